"""Vendor side: sign a license token with a private key that never leaves the vendor."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from licensing import tokens


class Command(BaseCommand):
    help = "Issue a signed license token (vendor side) and print it."

    def add_arguments(self, parser):
        parser.add_argument("--private-key", required=True, help="Ed25519 private key, PEM (PKCS#8)")
        parser.add_argument("--kid", required=True, help="key id the servers know the public key by")
        parser.add_argument("--customer", required=True)
        parser.add_argument("--seats", type=int, required=True)
        parser.add_argument("--days", type=int, required=True, help="valid for this many days from now")

    def handle(self, *args, **options):
        try:
            pem = Path(options["private_key"]).read_bytes()
        except OSError as error:
            raise CommandError(f"--private-key: cannot read {options['private_key']!r}: {error.strerror}") from None
        try:
            key = tokens.load_private_key(pem)
            token = tokens.issue(
                private_key=key,
                kid=options["kid"],
                customer=options["customer"],
                seats=options["seats"],
                days=options["days"],
            )
        except ValueError as error:
            raise CommandError(f"--{str(error)}" if ":" in str(error).split()[0] else str(error)) from None
        self.stdout.write(token)
