from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from finetune.models import FinetuneRun
from finetune.services import finetune_run_cancel, finetune_run_create, finetune_run_delete, finetune_run_rename
from gpu_worker.finetune_pipeline import finetune_run_execute
from refact_site.exceptions import ApplicationError
from tests.finetune.conftest import FAST
from tests.support.server import running_worker, wait_until


def finished(run: FinetuneRun) -> bool:
    run.refresh_from_db()
    return run.is_finished


def test_cancel_stops_within_a_step_and_keeps_checkpoints(tiny_model, training_files, project, worker):
    run = finetune_run_create(
        project=project, base_model="tiny-test", name="to-cancel", parameters={**FAST, "train_steps": 100}
    )
    wait_until(lambda: run.checkpoints.exists(), timeout=90, message="a first checkpoint")
    finetune_run_cancel(run=run)
    wait_until(lambda: finished(run), timeout=30, message="the run to stop")
    assert run.status == FinetuneRun.CANCELLED
    assert run.steps_done < 100 and run.checkpoints.exists()
    assert run.metrics.order_by("-step").first().step <= run.steps_done + 1
    with pytest.raises(ApplicationError, match="already cancelled"):
        finetune_run_cancel(run=run)

    finetune_run_rename(run=run, name="cancelled-1")
    with pytest.raises(ApplicationError) as caught:
        finetune_run_rename(run=run, name="bad name")
    assert caught.value.field == "name"
    finetune_run_delete(run=run)
    assert not FinetuneRun.objects.exists()


def test_queued_run_cancels_at_once_and_cannot_be_deleted_while_running(tiny_model, training_files, project):
    run = finetune_run_create(project=project, base_model="tiny-test", name="queued")
    FinetuneRun.objects.filter(pk=run.pk).update(status=FinetuneRun.WORKING)
    run.refresh_from_db()
    with pytest.raises(ApplicationError, match="cancel it before deleting"):
        finetune_run_delete(run=run)
    FinetuneRun.objects.filter(pk=run.pk).update(status=FinetuneRun.QUEUED)
    run.refresh_from_db()
    assert finetune_run_cancel(run=run).status == FinetuneRun.CANCELLED


def test_gpu_missing_and_filter_rejections_fail_with_clear_reasons(tiny_model, training_files, project):
    run = finetune_run_create(project=project, base_model="tiny-test", name="gpu", gpus="0")
    finetune_run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == FinetuneRun.FAILED and "GPU 0 not present" in run.error

    run = finetune_run_create(
        project=project, base_model="tiny-test", name="strict", parameters={**FAST, "filter_loss_threshold": 0}
    )
    finetune_run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == FinetuneRun.FAILED and "too few files after stage 2" in run.error
    reasons = set(run.files.values_list("reason", flat=True))
    assert "Filter empty" in reasons
    assert any(reason.startswith("loss ") and len(reason.split()[1].split(".")[1]) == 3 for reason in reasons)

    # the second run over the same contents reads the stage-2 cache
    again = finetune_run_create(
        project=project, base_model="tiny-test", name="strict2", parameters={**FAST, "filter_loss_threshold": 0}
    )
    finetune_run_execute(again.pk)
    assert "(11 cached)" in "\n".join(again.log_lines.values_list("text", flat=True))


def test_a_run_whose_worker_died_too_often_is_interrupted(tiny_model, training_files, project):
    run = finetune_run_create(project=project, base_model="tiny-test", name="unlucky")
    FinetuneRun.objects.filter(pk=run.pk).update(
        status=FinetuneRun.WORKING, attempts=3, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    finetune_run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == FinetuneRun.INTERRUPTED
    assert "worker stopped 3 times" in run.error


@pytest.mark.services_only
def test_resume_after_the_worker_process_is_killed(transactional_db, tiny_model, training_files, project, broker):
    run = finetune_run_create(
        project=project, base_model="tiny-test", name="resumed", parameters={**FAST, "train_steps": 60}
    )
    with running_worker(REFACT_WORKER_STALE_SECONDS="5") as first:
        wait_until(lambda: run.checkpoints.exists(), timeout=120, interval=0.05, message="a first checkpoint")
        first.stop(signal.SIGKILL)
    run.refresh_from_db()
    assert run.status == FinetuneRun.WORKING and run.steps_done < 60
    killed_at = run.checkpoints.order_by("-step").first().step
    time.sleep(6)  # the dead worker's heartbeat goes stale
    with running_worker(REFACT_WORKER_STALE_SECONDS="5"):
        wait_until(lambda: finished(run), timeout=300, message="the resumed run to finish")
    log = "\n".join(run.log_lines.values_list("text", flat=True))
    assert run.status == FinetuneRun.COMPLETED, log
    assert run.attempts == 2
    assert "resuming from checkpoint iter" in log
    resumed_step = int(log.split("resuming from checkpoint iter")[1][:4])
    assert resumed_step >= killed_at
    steps = list(run.metrics.values_list("step", flat=True))
    assert steps == list(range(0, run.steps_done + 1))
    assert run.checkpoints.filter(is_best=True).count() == 1 and run.evaluation
