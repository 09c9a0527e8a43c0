from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hosting.services import tiny_model_create
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Build a small random-weight model and tokenizer locally and add it to the catalogue (CPU demos, tests)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Catalogue name, e.g. tiny/llama")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = tiny_model_create(name=options["name"])
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"created {model.name}: {model.description} (weights in {model.weights})")
