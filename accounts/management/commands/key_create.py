from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import api_key_create
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create an API key for a user and print it once (Self-hosted: the admin's keys only)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="default")

    def handle(self, *args, **options):
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}")
        try:
            key, plaintext = api_key_create(user=user, name=options["name"])
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stderr.write(f"Key {key.display} ({key.name}) for {user.username!r}, shown only now:")
        self.stdout.write(plaintext)
