from __future__ import annotations

import time

import pytest

from finetune import services
from finetune.models import FinetuneRun
from finetune.services import finetune_run_create
from gpu_worker import finetune_core as core
from gpu_worker.finetune_pipeline import finetune_run_execute
from refact_site.exceptions import ApplicationError
from tests.finetune.conftest import FAST


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("count", [0, 1, 7, 8, 128, 130])
def test_shards_are_disjoint_balanced_and_cover_every_block(count, world):
    shards = [core.shard(count, rank, world) for rank in range(world)]
    seen = [index for part in shards for index in part]
    assert sorted(seen) == list(range(count))  # all of them, each once
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_a_data_parallel_step_equals_one_process_accumulating_the_whole_batch(tmp_path):
    """Uneven shares (5 samples over 2 ranks, micro-batches of 2): the same update as one process."""
    import torch
    import torch.multiprocessing

    from gpu_worker.supervisor import free_port
    from tests.finetune import ddp_ranks

    out = tmp_path / "rank0.pt"
    torch.multiprocessing.spawn(ddp_ranks.one_step, args=(2, free_port(), 5, 2, str(out)), nprocs=2)
    reference = ddp_ranks.TinyLM()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    core.train_step(reference, optimizer, [ddp_ranks.batch(5)], device=torch.device("cpu"), lr=0.5)
    distributed = torch.load(out)
    for name, value in reference.state_dict().items():
        assert torch.allclose(distributed[name], value, atol=1e-6), name


def test_more_gpus_than_samples_per_step_is_refused(tiny_model, training_files, project):
    with pytest.raises(ApplicationError) as caught:
        finetune_run_create(
            project=project, base_model="tiny-test", name="wide", parameters={**FAST, "batch_size": 4}, gpus="0,1,2,3,4"
        )
    assert caught.value.field == "gpus" and "batch_size of at least 5" in caught.value.message


def test_step_batches_are_full_and_the_same_on_every_rank(tiny_model, training_files):
    from transformers import AutoTokenizer

    from gpu_worker.finetune_pipeline import weights_location
    from hosting.selectors import model_get

    spec = model_get("tiny-test")
    tokenizer = AutoTokenizer.from_pretrained(weights_location(spec))
    texts = [file.absolute_path.read_text() for file in training_files[:3]]
    first = core.step_batches(texts, tokenizer, spec.fim, ctx=64, batch_size=5)
    again = core.step_batches(texts, tokenizer, spec.fim, ctx=64, batch_size=5)
    batches = [next(first) for _ in range(40)]  # runs over epoch boundaries
    assert all(batch.shape == (5, 64) for batch in batches)
    assert all(bool((batch == next(again)).all()) for batch in batches)
    resumed = core.step_batches(texts, tokenizer, spec.fim, ctx=64, batch_size=5, skip_steps=30)
    assert bool((next(resumed) == batches[30]).all())


def test_two_cpu_ranks_train_data_parallel_cancel_and_resume(
    tiny_model, training_files, project, settings, monkeypatch
):
    """gloo over two CPU processes: the same pipeline, effective batch and control as one process."""
    settings.REFACT_FINETUNE_CPU_WORLD_SIZE = 2
    monkeypatch.setattr("gpu_worker.finetune_pipeline.EVAL_LINES", 2)  # generation is not what is tested here
    started = time.monotonic()
    run = finetune_run_create(
        project=project, base_model="tiny-test", name="ddp", parameters={**FAST, "train_steps": 20}
    )

    # Cancel right after the first checkpoint, as a user would from the page.
    record = services.run_checkpoint_record

    def record_then_cancel(**kwargs):
        checkpoint = record(**kwargs)
        FinetuneRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        return checkpoint

    monkeypatch.setattr(services, "run_checkpoint_record", record_then_cancel)
    finetune_run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == FinetuneRun.CANCELLED, run.error
    first = run.checkpoints.get()
    assert first.step <= run.steps_done < 20  # the ranks stopped together, soon after the cancel
    assert run.metrics.order_by("-step").first().step == run.steps_done

    # A worker that died mid-run: the next one resumes from the last checkpoint, on two ranks again.
    monkeypatch.setattr(services, "run_checkpoint_record", record)
    FinetuneRun.objects.filter(pk=run.pk).update(
        status=FinetuneRun.WORKING, cancel_requested=False, finished_at=None, heartbeat_at=None
    )
    finetune_run_execute(run.pk)
    run.refresh_from_db()
    log = "\n".join(run.log_lines.values_list("text", flat=True))
    assert run.status == FinetuneRun.COMPLETED, log
    assert "data-parallel on 2 ranks (cpu, cpu)" in log
    assert f"resuming from checkpoint {first.name}" in log and f"resumed at step {first.step}" in log

    # every step trained the whole batch, split over the ranks: what one process accumulates
    per_step = FAST["batch_size"] * FAST["model_ctx_size"]
    points = list(run.metrics.order_by("step"))
    assert [point.step for point in points] == list(range(0, run.steps_done + 1))
    assert all(point.tokens == point.step * per_step for point in points[1:])

    test_losses = [point.test_loss for point in points[1:] if point.test_loss is not None]
    assert min(test_losses) < points[0].test_loss
    checkpoints = list(run.checkpoints.all())
    assert len(checkpoints) >= 2
    best = [checkpoint for checkpoint in checkpoints if checkpoint.is_best]
    assert len(best) == 1 and best[0].test_loss == min(c.test_loss for c in checkpoints)
    assert (settings.DATA_DIR / best[0].path / "adapter_model.safetensors").exists()
    assert run.evaluation["checkpoint"] == best[0].name
    assert time.monotonic() - started < 240  # about 60 s on two free cores


def test_a_failing_rank_fails_the_run_with_its_error(
    tiny_model, training_files, project, settings, monkeypatch, tmp_path
):
    """No rank is left waiting in a collective: the run fails at once, naming the rank and its error."""
    from gpu_worker import finetune_pipeline

    settings.REFACT_FINETUNE_CPU_WORLD_SIZE = 2
    real = finetune_pipeline.weights_location
    calls = []

    def weights_gone_after_the_filter(spec):
        calls.append(spec.name)
        return real(spec) if len(calls) == 1 else str(tmp_path)  # the ranks find no model there

    monkeypatch.setattr(finetune_pipeline, "weights_location", weights_gone_after_the_filter)
    run = finetune_run_create(project=project, base_model="tiny-test", name="broken", parameters=FAST)
    started = time.monotonic()
    finetune_run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == FinetuneRun.FAILED
    assert run.error.startswith("RuntimeError: data-parallel training failed: rank ")
    assert "\n" not in run.error  # one line; the rank's traceback is in the log
    assert "failed:\nTraceback" in "\n".join(run.log_lines.values_list("text", flat=True))
    assert time.monotonic() - started < 120
