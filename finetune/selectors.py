from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from finetune.models import FinetuneCheckpoint, FinetuneRun
from refact_site.exceptions import NotFoundError


@dataclass(frozen=True)
class LoraRef:
    """A LoRA checkpoint published as `base:run:checkpoint`."""

    base_model: str
    run: str
    checkpoint: str
    path: Path  # the adapter directory (safetensors) on disk

    @property
    def published_name(self) -> str:
        return f"{self.base_model}:{self.run}:{self.checkpoint}"


def _ref(checkpoint: FinetuneCheckpoint) -> LoraRef:
    return LoraRef(
        base_model=checkpoint.run.base_model,
        run=checkpoint.run.name,
        checkpoint=checkpoint.name,
        path=settings.DATA_DIR / checkpoint.path,
    )


def lora_resolve(*, base_model: str, run: str, checkpoint: str | None = None) -> LoraRef | None:
    """The checkpoint of a run of `base_model` (its best one when checkpoint is None), or None.

    Contract between finetune (issue 6) and accounts/hosting (issues 4 and 7); implemented by finetune.
    """
    checkpoints = FinetuneCheckpoint.objects.select_related("run").filter(run__base_model=base_model, run__name=run)
    found = checkpoints.filter(name=checkpoint).first() if checkpoint else checkpoints.filter(is_best=True).first()
    return _ref(found) if found is not None else None


def lora_list(*, base_model: str) -> list[LoraRef]:
    """Every checkpoint of the completed runs of `base_model`, newest run first, in step order."""
    checkpoints = (
        FinetuneCheckpoint.objects.select_related("run")
        .filter(run__base_model=base_model, run__status=FinetuneRun.COMPLETED)
        .order_by("-run__created_at", "step")
    )
    return [_ref(checkpoint) for checkpoint in checkpoints]


def finetune_run_best_checkpoint(*, run: FinetuneRun) -> FinetuneCheckpoint | None:
    return run.checkpoints.filter(is_best=True).first()


def finetune_runs_visible(*, user: Any) -> QuerySet[FinetuneRun]:
    """Admins see every run; other users their team's runs only."""
    runs = FinetuneRun.objects.select_related("project")
    if user.is_superuser or user.is_staff:
        return runs
    if not getattr(user, "team_id", None):
        return runs.none()
    return runs.filter(team_id=user.team_id)


def finetune_run_get(*, user: Any, run_id: int | None = None, name: str | None = None) -> FinetuneRun:
    """The run if this user may see it; 404 otherwise, also across teams."""
    runs = finetune_runs_visible(user=user)
    found = runs.filter(pk=run_id).first() if run_id is not None else runs.filter(name=name).first()
    if found is None:
        raise NotFoundError(f"no run {run_id if run_id is not None else name!r}", field="run")
    return found


def finetune_run_snapshot(*, run: FinetuneRun) -> dict[str, Any]:
    """What a monitor needs on connect: status and every metric point so far."""
    best = finetune_run_best_checkpoint(run=run)
    return {
        "type": "snapshot",
        "run": run.pk,
        "name": run.name,
        "status": run.status,
        "progress": run.progress,
        "eta_seconds": run.eta_seconds,
        "steps_done": run.steps_done,
        "total_steps": run.total_steps,
        "error": run.error,
        "best": best.name if best else None,
        "metrics": [metric.as_event() for metric in run.metrics.all()],
        "checkpoints": [{"name": c.name, "step": c.step, "test_loss": c.test_loss} for c in run.checkpoints.all()],
    }
