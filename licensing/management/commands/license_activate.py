from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from licensing.services import license_activate
from refact_site.exceptions import ApplicationError
from refact_site.text import count_noun


class Command(BaseCommand):
    help = "Activate a license token (Enterprise edition)."

    def add_arguments(self, parser):
        parser.add_argument("token")

    def handle(self, *args, **options):
        try:
            license = license_activate(token=options["token"], actor=None)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(
            f"License activated: {license.customer}, {count_noun(license.seats, 'seat')}, "
            f"valid until {license.expires_at:%Y-%m-%d %H:%M} UTC"
        )
