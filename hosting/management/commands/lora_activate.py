from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hosting.selectors import assignment_loras
from hosting.services import lora_activate
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Choose the LoRA served with a model: --off, --best-of-latest, or --run RUN [--checkpoint C] (adds one)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--off", action="store_true", help="Serve the base model alone")
        group.add_argument("--best-of-latest", action="store_true", help="Best checkpoint of the latest run")
        group.add_argument("--run", help="A specific fine-tune run")
        parser.add_argument("--checkpoint", help="A checkpoint of --run (default: its best)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["checkpoint"] and not options["run"]:
            raise CommandError("--checkpoint needs --run")
        mode = "off" if options["off"] else "best_of_latest" if options["best_of_latest"] else "specific"
        try:
            assignment = lora_activate(
                actor=None, model=options["model"], mode=mode, run=options["run"], checkpoint=options["checkpoint"]
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        resolved = assignment_loras(assignment=assignment)
        names = ", ".join(ref.published_name for ref in resolved.refs) or "none"
        self.stdout.write(f"{assignment.model}: LoRAs served: {names}")
        for problem in resolved.problems:
            self.stdout.write(f"  note: {problem}")
