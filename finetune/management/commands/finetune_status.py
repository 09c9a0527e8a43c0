from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finetune.models import FinetuneRun


class Command(BaseCommand):
    help = "Show a fine-tune run: state, steps, ETA, best checkpoint and its test loss."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", help="Run name")

    def handle(self, *args: Any, **options: Any) -> None:
        run = FinetuneRun.objects.filter(name=options["run"]).first()
        if run is None:
            raise CommandError(f"run: no run named {options['run']!r}")
        best = run.checkpoints.filter(is_best=True).first()
        lines = [
            f"run:      {run.name} ({run.base_model}, project {run.project.name})",
            f"state:    {run.status}" + (f" - {run.error}" if run.error else ""),
            f"steps:    {run.steps_done}/{run.total_steps} ({run.progress:.0f}%)",
            f"eta:      {f'{run.eta_seconds:.0f}s' if run.eta_seconds is not None else '-'}",
            f"best:     {f'{best.name} (test loss {best.test_loss:.3f})' if best else '-'}",
        ]
        if run.evaluation:
            base, tuned = run.evaluation["base"], run.evaluation["finetuned"]
            lines.append(
                f"eval:     test loss {base['test_loss']:.3f} -> {tuned['test_loss']:.3f}, exact match "
                f"{base['exact_match']:.0%} -> {tuned['exact_match']:.0%}"
            )
        self.stdout.write("\n".join(lines))
