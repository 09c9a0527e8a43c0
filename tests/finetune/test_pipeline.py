from __future__ import annotations

import time

from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings

from finetune.models import FinetuneRun
from finetune.selectors import lora_list, lora_resolve
from finetune.services import finetune_run_create
from refact_site.routing import websocket_urlpatterns
from tests.finetune.conftest import FAST


async def watch(run_id: int, user, *, timeout: float) -> list[dict]:
    """Everything the run's socket sends until the run ends."""
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/finetune/runs/{run_id}/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # receive_nothing waits without cancelling the consumer (a receive timeout would)
        if await communicator.receive_nothing(timeout=0.5):
            continue
        event = await communicator.receive_json_from()
        events.append(event)
        if event.get("type") == "status" and event["status"] in ("completed", "failed", "cancelled"):
            break
    await communicator.disconnect()
    return events


def test_whole_pipeline_on_cpu(tiny_model, admin_user, worker, scanned_project):
    """git source -> stage-1 scan -> stage 2 -> LoRA training -> checkpoints -> evaluation, watched live."""
    started = time.monotonic()
    run = finetune_run_create(project=scanned_project, base_model="tiny-test", name="e2e-run", parameters=FAST)
    events = async_to_sync(watch)(run.pk, admin_user, timeout=170)
    run.refresh_from_db()
    log = "\n".join(run.log_lines.values_list("text", flat=True))
    assert run.status == FinetuneRun.COMPLETED, log
    assert time.monotonic() - started < 180

    # stage 2: every file has a loss, the empty one is rejected as such
    empty = run.files.get(path="upstream/stdlib/empty.py")
    assert (empty.status, empty.reason, empty.loss) == ("rejected", "Filter empty", None)
    assert run.files.filter(status="accepted", loss__isnull=False).count() == 10
    assert run.files.filter(split="test").count() == 3

    # live: the socket saw metric points as they were made, not only the snapshot
    live_points = [event for event in events if event["type"] == "metric"]
    assert len(live_points) >= 10
    assert any(event["type"] == "log" for event in events)

    # the test loss fell below its starting value; checkpoints with the best one marked
    start_loss = run.metrics.get(step=0).test_loss
    test_losses = list(run.metrics.filter(test_loss__isnull=False, step__gt=0).values_list("test_loss", flat=True))
    assert min(test_losses) < start_loss
    checkpoints = list(run.checkpoints.all())
    assert len(checkpoints) >= 2
    best = [checkpoint for checkpoint in checkpoints if checkpoint.is_best]
    assert len(best) == 1 and best[0].test_loss == min(c.test_loss for c in checkpoints)
    assert best[0].name.startswith(f"iter{best[0].step:04d}-testloss")
    assert (settings.DATA_DIR / best[0].path / "adapter_model.safetensors").exists()

    # evaluation report: base vs best
    report = run.evaluation
    assert report["checkpoint"] == best[0].name
    assert report["finetuned"]["test_loss"] < report["base"]["test_loss"]
    assert 0 <= report["base"]["exact_match"] <= 1 and report["lines"] > 0

    # the LoRA contract used by hosting
    ref = lora_resolve(base_model="tiny-test", run="e2e-run")
    assert ref is not None and ref.checkpoint == best[0].name
    assert ref.published_name == f"tiny-test:e2e-run:{best[0].name}"
    assert lora_resolve(base_model="tiny-test", run="e2e-run", checkpoint=checkpoints[0].name).path.exists()
    assert lora_resolve(base_model="tiny-test", run="nope") is None
    assert len(lora_list(base_model="tiny-test")) == len(checkpoints)
