from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hosting.services import model_assign
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Host a catalogue model (or change how it is hosted); refused with the reason when it cannot fit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="Catalogue name, e.g. qwen2.5/coder/1.5b/base")
        parser.add_argument("--backend", choices=["transformers", "vllm"], default=None)
        parser.add_argument("--gpus", type=int, default=None, help="GPUs to shard over: 1, 2 or 4; 0 = CPU")
        parser.add_argument("--share-gpu", action="store_true", help="Share the GPU with other shared models")
        parser.add_argument("--n-ctx", type=int, default=None, help="Context size (default: the model's)")
        parser.add_argument("--concurrency", type=int, default=None, help="Requests decoded together (default 8)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            assignment = model_assign(
                actor=None,
                model=options["model"],
                backend=options["backend"],
                gpus=options["gpus"],
                share_gpu=options["share_gpu"],
                n_ctx=options["n_ctx"],
                concurrency=options["concurrency"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        where = ", ".join(assignment.devices)
        self.stdout.write(
            f"assigned {assignment.model}: {assignment.backend} on {assignment.node} ({where}), "
            f"context {assignment.n_ctx}{', shared GPU' if assignment.share_gpu else ''}"
        )
