"""Fine-tune runs: create, control, and the writes the worker makes (metrics, log, checkpoints)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from finetune.models import (
    RUN_NAME_PATTERN,
    FinetuneCheckpoint,
    FinetuneFile,
    FinetuneLogLine,
    FinetuneMetric,
    FinetuneRun,
)
from finetune.parameters import parameters_parse
from hosting.catalogue import FINETUNE
from hosting.selectors import model_get
from projects.models import Project
from projects.selectors import project_training_files
from refact_site.exceptions import ApplicationError, ConflictError
from refact_site.live import group_name, publish
from refact_site.text import count_noun

MIN_FILES = 2  # one to train on, one to test on
GPU_LIST = re.compile(r"^\d{1,2}(,\d{1,2})*$")


def run_group(run_id: int) -> str:
    return group_name("finetune", "run", run_id)


def run_directory(run: FinetuneRun) -> Path:
    return settings.DATA_DIR / "finetune" / run.directory_name


def _audit(actor: Any, action: str, run: FinetuneRun, **details: Any) -> None:
    from accounts.services import audit_record

    audit_record(actor=actor, action=action, target=run, diff=details or None)


def run_name_validate(*, name: str, exclude_id: int | None = None) -> str:
    name = (name or "").strip()
    if not re.fullmatch(RUN_NAME_PATTERN, name):
        raise ApplicationError("name: use 1 to 30 letters, digits, '_', '.' or '-' (no spaces)", field="name")
    taken = FinetuneRun.objects.filter(name=name)
    if exclude_id is not None:
        taken = taken.exclude(pk=exclude_id)
    if taken.exists():
        raise ApplicationError(f"name: a run named {name!r} already exists", field="name")
    return name


def gpus_parse(value: str | list[int] | None) -> list[int]:
    """ "0,1" or [0, 1] as sorted unique indices; empty means the CPU."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        text = value.replace(" ", "")
        if not GPU_LIST.fullmatch(text):
            raise ApplicationError(f"gpus: {value!r} is not a list of GPU indices such as 0,1", field="gpus")
        indices = [int(part) for part in text.split(",")]
    else:
        try:
            indices = [int(index) for index in value]
        except (TypeError, ValueError):
            raise ApplicationError("gpus: GPU indices are whole numbers such as 0 or 1", field="gpus") from None
    if any(index < 0 or index > 63 for index in indices):
        raise ApplicationError("gpus: GPU indices go from 0 to 63", field="gpus")
    return sorted(set(indices))


@transaction.atomic
def finetune_run_create(
    *,
    project: Project,
    base_model: str,
    name: str,
    parameters: dict[str, Any] | None = None,
    train_embeddings: bool | None = None,
    keep_smaller: bool = False,
    gpus: str | list[int] | None = None,
    user: Any = None,
) -> FinetuneRun:
    """Validate everything cheap to check, record the files, and queue the run for a worker."""
    name = run_name_validate(name=name)
    spec = model_get(base_model)
    if spec is None:
        raise ApplicationError(f"model: unknown model {base_model!r}", field="model")
    if not spec.supports(FINETUNE) or spec.fim is None:
        raise ApplicationError(f"model: {base_model} cannot be fine-tuned", field="model")
    values = parameters_parse(parameters or {})
    if train_embeddings is not None:
        values["trainable_embeddings"] = bool(train_embeddings)
    gpu_indices = gpus_parse(gpus)
    if not gpu_indices and not spec.cpu_capable:
        raise ApplicationError(f"gpus: {base_model} is too large to fine-tune on the CPU; select GPUs", field="gpus")
    if len(gpu_indices) > values["batch_size"]:
        # Data-parallel training gives every GPU a share of each step's batch.
        count = len(gpu_indices)
        raise ApplicationError(
            f"gpus: {count} GPUs need a batch_size of at least {count} (now {values['batch_size']})", field="gpus"
        )
    files = project_training_files(project=project)
    if len(files) < MIN_FILES:
        raise ApplicationError(
            f"project: too few files to fine-tune ({len(files)} accepted, at least {MIN_FILES} needed: "
            "scan the project's sources first)",
            field="project",
        )
    run = FinetuneRun.objects.create(
        name=name,
        project=project,
        team=project.team,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        base_model=base_model,
        parameters=values,
        train_embeddings=values["trainable_embeddings"],
        keep_smaller=keep_smaller,
        gpus=gpu_indices,
    )
    FinetuneFile.objects.bulk_create(
        FinetuneFile(
            run=run,
            path=file.path,
            absolute_path=str(file.absolute_path),
            sha256=file.sha256,
            language=file.language,
            size=file.size,
            marked_test=file.is_test,
        )
        for file in files
    )
    run_log(run=run, text=f"queued: {count_noun(len(files), 'file')} of project {project.name}, model {base_model}")
    run.enqueue()
    _audit(user, "finetune.start", run, model=base_model)
    return run


def run_publish_status(run: FinetuneRun) -> None:
    publish(
        run_group(run.pk),
        {
            "type": "status",
            "status": run.status,
            "progress": run.progress,
            "eta_seconds": run.eta_seconds,
            "steps_done": run.steps_done,
            "total_steps": run.total_steps,
            "error": run.error,
        },
    )


def run_log(*, run: FinetuneRun, text: str) -> FinetuneLogLine:
    line = FinetuneLogLine.objects.create(run=run, text=text)
    publish(run_group(run.pk), {"type": "log", "id": line.pk, "time": line.created_at.isoformat(), "text": text})
    return line


def run_metric_record(*, run: FinetuneRun, step: int, **values: Any) -> FinetuneMetric:
    """Store a step's metrics (merging a test loss into the step's row) and publish the point."""
    metric, _ = FinetuneMetric.objects.update_or_create(run=run, step=step, defaults=values)
    publish(run_group(run.pk), metric.as_event())
    return metric


def run_checkpoint_record(
    *, run: FinetuneRun, name: str, step: int, train_loss: float | None, test_loss: float, path: Path
) -> FinetuneCheckpoint:
    """Record a saved checkpoint and move the best mark to the minimum test loss."""
    size = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    with transaction.atomic():
        checkpoint = FinetuneCheckpoint.objects.create(
            run=run,
            name=name,
            step=step,
            train_loss=train_loss,
            test_loss=test_loss,
            size_bytes=size,
            path=str(path.relative_to(settings.DATA_DIR)),
        )
        best = run.checkpoints.order_by("test_loss", "step").first()
        run.checkpoints.exclude(pk=best.pk).filter(is_best=True).update(is_best=False)
        run.checkpoints.filter(pk=best.pk).update(is_best=True)
    checkpoint.refresh_from_db()
    publish(
        run_group(run.pk),
        {"type": "checkpoint", "name": name, "step": step, "test_loss": test_loss, "best": best.name},
    )
    return checkpoint


def run_finish(*, run: FinetuneRun, status: str, error: str = "") -> None:
    run.beat(
        status=status,
        error=error,
        finished_at=timezone.now(),
        eta_seconds=None,
        progress=100.0 if status == FinetuneRun.COMPLETED else run.progress,
    )
    run_publish_status(run)


def finetune_run_cancel(*, run: FinetuneRun, user: Any = None) -> FinetuneRun:
    """Queued runs stop now; running ones stop within one step (their checkpoints are kept)."""
    if run.is_finished:
        raise ConflictError(f"run {run.name} has already {run.status}", field="status")
    updated = FinetuneRun.objects.filter(pk=run.pk, status=FinetuneRun.QUEUED).update(
        status=FinetuneRun.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    )
    if not updated:
        FinetuneRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    run.refresh_from_db()
    run_log(run=run, text="cancel requested" if not updated else "cancelled before it started")
    run_publish_status(run)
    _audit(user, "finetune.cancel", run)
    return run


def finetune_run_delete(*, run: FinetuneRun, user: Any = None) -> None:
    if not run.is_finished:
        raise ConflictError(f"run {run.name} is {run.status}: cancel it before deleting it", field="status")
    directory = run_directory(run)
    _audit(user, "finetune.delete", run)
    run.delete()
    shutil.rmtree(directory, ignore_errors=True)


def finetune_run_rename(*, run: FinetuneRun, name: str, user: Any = None) -> FinetuneRun:
    old = run.name
    run.name = run_name_validate(name=name, exclude_id=run.pk)
    run.save(update_fields=["name"])
    _audit(user, "finetune.rename", run, old=old)
    publish(run_group(run.pk), {"type": "renamed", "name": run.name})
    return run
