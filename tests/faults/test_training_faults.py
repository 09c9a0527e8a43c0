"""A fine-tune run on a real worker: killed with SIGKILL mid-training, resumed by the restarted worker,
then the disk fills up while it writes a checkpoint.

The run's directory is a size-limited tmpfs (a real ENOSPC) when this process may mount one; elsewhere
the worker's file-size limit is lowered instead (a real EFBIG from the kernel), the same failure path.
"""

from __future__ import annotations

import hashlib
import resource
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from finetune.models import FinetuneRun
from finetune.services import finetune_run_create, run_directory
from tests.finetune.conftest import FAST
from tests.support.server import running_worker, wait_until

pytestmark = [pytest.mark.services_only, pytest.mark.django_db(transaction=True)]
WORKER = {"REFACT_WORKER_NAME": "fault-train-worker", "REFACT_SUPERVISOR": "false", "REFACT_WORKER_STALE_SECONDS": "5"}


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(item.relative_to(path)): hashlib.sha256(item.read_bytes()).hexdigest()
        for item in sorted(path.rglob("*"))
        if item.is_file()
    }


@pytest.fixture
def small_disk(request) -> Iterator[callable]:
    """small_disk(directory) -> fill(): a 16 MB tmpfs at DIRECTORY; fill() takes the rest of its space."""
    mounted: list[Path] = []

    def mount(directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(  # noqa: S603
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(directory)],  # noqa: S607
            capture_output=True,
        )
        if result.returncode != 0:
            return None
        mounted.append(directory)

        def fill() -> None:
            with (directory / "ballast").open("wb") as ballast:
                try:
                    while True:
                        ballast.write(b"\0" * (1 << 20))
                        ballast.flush()
                except OSError:
                    pass
            # The last partial megabyte too: nothing left for the next checkpoint.
            try:
                with (directory / "ballast-tail").open("wb") as tail:
                    while True:
                        tail.write(b"\0" * 4096)
                        tail.flush()
            except OSError:
                pass

        return fill

    yield mount
    for directory in mounted:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)  # noqa: S603, S607


def test_training_resumes_after_a_kill_and_fails_cleanly_when_the_disk_is_full(
    tiny_model, training_files, project, broker, small_disk
):
    run = finetune_run_create(
        project=project, base_model="tiny-test", name="faulty", parameters={**FAST, "train_steps": 30, "batch_size": 4}
    )
    directory = run_directory(run)
    fill = small_disk(directory)

    # 1. Killed mid-training.
    with running_worker(**WORKER) as first:
        wait_until(lambda: run.checkpoints.exists(), timeout=120, interval=0.05, message="a first checkpoint")
        first.stop(signal.SIGKILL)
    run.refresh_from_db()
    assert run.status == FinetuneRun.WORKING
    before_kill = {c.name: tree_digest(settings.DATA_DIR / c.path) for c in run.checkpoints.all()}
    last_step = max(run.checkpoints.values_list("step", flat=True))

    # 2. The restarted worker resumes from the last checkpoint; 3. then the disk fills up.
    with running_worker(**WORKER) as second:
        wait_until(
            lambda: run.checkpoints.filter(step__gt=last_step).exists(),
            timeout=120,
            interval=0.05,
            message="a checkpoint after the resume",
        )
        if fill is not None:
            fill()
        else:  # no mount here: the kernel refuses any file over 4 KiB to the worker from now on
            resource.prlimit(second.popen.pid, resource.RLIMIT_FSIZE, (4096, 4096))
        wait_until(lambda: FinetuneRun.objects.get(pk=run.pk).is_finished, timeout=120, message="the run to stop")
        log = second.log()
    run.refresh_from_db()
    lines = "\n".join(run.log_lines.values_list("text", flat=True))
    assert "resuming from checkpoint" in lines, lines
    assert run.attempts == 2
    assert run.status == FinetuneRun.FAILED, (run.status, run.error, log[-3000:])
    assert run.error.startswith("no space left on the disk of the data directory while saving checkpoint iter"), (
        run.error
    )
    assert "earlier checkpoints are intact" in run.error
    assert "Traceback" not in run.error

    # Nothing twice, nothing half-written, every recorded checkpoint whole.
    steps = list(run.metrics.order_by("step").values_list("step", flat=True))
    assert steps == list(range(steps[-1] + 1)), steps
    assert not list(directory.glob("checkpoints/.*")), list(directory.glob("checkpoints/.*"))
    recorded = {c.name: c for c in run.checkpoints.all()}
    assert sorted(recorded) == sorted(p.name for p in (directory / "checkpoints").iterdir())
    for name, digest in before_kill.items():
        assert tree_digest(settings.DATA_DIR / recorded[name].path) == digest, f"{name} changed"
    from safetensors.torch import load_file

    for checkpoint in recorded.values():
        assert load_file(settings.DATA_DIR / checkpoint.path / "adapter_model.safetensors")
    assert run.checkpoints.filter(is_best=True).count() == 1
