from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from finetune.models import FinetuneRun
from finetune.services import finetune_run_create
from projects.models import Project
from refact_site.exceptions import ApplicationError


def parse_sets(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or not name.strip():
            raise CommandError(f"--set {item!r}: use PARAM=VALUE, e.g. --set lr=1e-4")
        values[name.strip()] = value.strip()
    return values


def wait_for(command: BaseCommand, run_id: int) -> FinetuneRun:
    """A progress bar until the run ends; with no shared broker this process does the work itself."""
    from tqdm import tqdm

    runtime = None
    if not settings.BROKER_URL:
        from gpu_worker.runtime import WorkerRuntime

        runtime = WorkerRuntime(embedded=True, threads=1)
        runtime.start()
    run = FinetuneRun.objects.get(pk=run_id)
    try:
        with tqdm(total=100, unit="%", file=command.stderr, bar_format="{desc} {bar} {n:.0f}% {postfix}") as bar:
            while not run.is_finished:
                time.sleep(0.5)
                run.refresh_from_db()
                bar.set_description(run.status)
                bar.n = run.progress
                eta = f"ETA {run.eta_seconds:.0f}s" if run.eta_seconds else ""
                bar.set_postfix_str(f"step {run.steps_done}/{run.total_steps} {eta}")
                bar.refresh()
    finally:
        if runtime is not None:
            runtime.stop()
    return run


class Command(BaseCommand):
    help = "Start a fine-tune of MODEL on PROJECT's files (the same checks as the Finetune page)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="Project name")
        parser.add_argument("--model", required=True, help="Base model from the catalogue")
        parser.add_argument("--name", required=True, help="Run name: 1-30 of letters, digits, _ . -")
        parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE", help="An Advanced setting")
        parser.add_argument("--gpus", default="", help="GPU indices such as 0,1 (default: the CPU)")
        parser.add_argument("--keep-smaller", action="store_true", help="Train fewer, smaller adapters")
        parser.add_argument("--wait", action="store_true", help="Show progress until the run ends")

    def handle(self, *args: Any, **options: Any) -> None:
        projects = list(Project.objects.filter(name=options["project"]))
        if not projects:
            raise CommandError(f"project: no project named {options['project']!r}")
        if len(projects) > 1:
            raise CommandError(f"project: {len(projects)} projects are named {options['project']!r} (one per team)")
        try:
            run = finetune_run_create(
                project=projects[0],
                base_model=options["model"],
                name=options["name"],
                parameters=parse_sets(options["set"]),
                keep_smaller=options["keep_smaller"],
                gpus=options["gpus"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"run {run.name} queued (id {run.pk})")
        if not options["wait"] and not settings.BROKER_URL:
            self.stdout.write(
                "no shared broker: the server's in-process worker starts it on its next start; use --wait to train now"
            )
        if options["wait"]:
            run = wait_for(self, run.pk)
            best = run.checkpoints.filter(is_best=True).first()
            summary = f"run {run.name} {run.status}" + (f": best {best.name}" if best else "")
            if run.status != FinetuneRun.COMPLETED:
                raise CommandError(summary + (f" ({run.error})" if run.error else ""))
            self.stdout.write(summary)
