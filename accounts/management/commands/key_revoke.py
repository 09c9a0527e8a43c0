from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.services import api_key_find, api_key_revoke
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Revoke an API key by its id (the part after rfx_, as shown on the Users page)."

    def add_arguments(self, parser):
        parser.add_argument("key_id")

    def handle(self, *args, **options):
        try:
            key = api_key_revoke(key=api_key_find(options["key_id"]))
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"Key {key.display} of {key.user.username!r} revoked")
