from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hosting.services import model_unassign
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Stop hosting a model; its inference server stops."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model_unassign(actor=None, model=options["model"])
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"unassigned {options['model']}")
