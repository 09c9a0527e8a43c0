from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from accounts.models import Team
from finetune.models import FinetuneCheckpoint, FinetuneMetric, FinetuneRun
from finetune.services import finetune_run_create
from projects.models import Project
from refact_site.routing import websocket_urlpatterns


@pytest.fixture
def teams(db, django_user_model):
    red, blue = Team.objects.create(name="red"), Team.objects.create(name="blue")
    alice = django_user_model.objects.create_user("alice", password="pw-alice-1", team=red)
    bob = django_user_model.objects.create_user("bob", password="pw-bob-1", team=blue)
    return {"alice": alice, "bob": bob, "red": red, "blue": blue}


@pytest.fixture
def red_run(tiny_model, training_files, teams, settings):
    project = Project.objects.create(name="red-project", team=teams["red"])
    run = finetune_run_create(project=project, base_model="tiny-test", name="red-run")
    FinetuneMetric.objects.create(run=run, step=1, train_loss=5.0, test_loss=5.5)
    directory = settings.DATA_DIR / "finetune" / run.directory_name / "checkpoints" / "iter0001-testloss5.500"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_model.safetensors").write_bytes(b"weights")
    FinetuneCheckpoint.objects.create(
        run=run,
        name="iter0001-testloss5.500",
        step=1,
        test_loss=5.5,
        is_best=True,
        path=str(directory.relative_to(settings.DATA_DIR)),
    )
    return run


def test_team_members_see_their_runs_and_others_get_404(client, red_run, teams):
    client.force_login(teams["alice"])
    assert [run["name"] for run in client.get("/api/finetune/runs/").json()] == ["red-run"]
    base = f"/api/finetune/runs/{red_run.pk}"
    assert client.get(f"{base}/").json()["best_checkpoint"] == "iter0001-testloss5.500"
    assert client.get(f"{base}/metrics/").json()[0]["test_loss"] == 5.5
    assert "queued" in client.get(f"{base}/log/").json()[0]["text"]
    assert client.get(f"{base}/checkpoints/").json()[0]["is_best"] is True
    assert len(client.get(f"{base}/files/").json()) == 11
    download = client.get(f"{base}/checkpoints/iter0001-testloss5.500/download/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"

    client.force_login(teams["bob"])
    assert client.get("/api/finetune/runs/").json() == []
    suffixes = ("/", "/metrics/", "/log/", "/checkpoints/", "/files/", "/checkpoints/iter0001-testloss5.500/download/")
    for suffix in suffixes:
        assert client.get(f"{base}{suffix}").status_code == 404
    assert client.post(f"{base}/cancel/").status_code == 404
    assert client.delete(f"{base}/").status_code == 404


def test_start_rename_cancel_delete_through_the_api(client, tiny_model, training_files, teams):
    project = Project.objects.create(name="p", team=teams["alice"].team)
    client.force_login(teams["alice"])
    bad = client.post(
        "/api/finetune/runs/",
        {"project": project.pk, "model": "tiny-test", "name": "x", "parameters": {"lr": 5}},
        content_type="application/json",
    )
    assert bad.status_code == 400 and bad.json()["field"] == "lr" and "from 1e-05 to 0.003" in bad.json()["detail"]
    created = client.post(
        "/api/finetune/runs/",
        {"project": project.pk, "model": "tiny-test", "name": "api-run", "parameters": {"lr": 1e-4}},
        content_type="application/json",
    )
    assert created.status_code == 201, created.json()
    run_id = created.json()["id"]
    assert created.json()["parameters"]["lr"] == 1e-4 and created.json()["parameters"]["lora_r"] == 16
    assert client.delete(f"/api/finetune/runs/{run_id}/").status_code == 409
    renamed = client.patch(f"/api/finetune/runs/{run_id}/", {"name": "bad name"}, content_type="application/json")
    assert renamed.status_code == 400 and renamed.json()["field"] == "name"
    assert (
        client.patch(f"/api/finetune/runs/{run_id}/", {"name": "api-run-2"}, content_type="application/json").json()[
            "name"
        ]
        == "api-run-2"
    )
    assert client.post(f"/api/finetune/runs/{run_id}/cancel/").json()["status"] == "cancelled"
    assert client.delete(f"/api/finetune/runs/{run_id}/").status_code == 204
    other = Project.objects.create(name="q", team=teams["blue"])
    assert (
        client.post(
            "/api/finetune/runs/",
            {"project": other.pk, "model": "tiny-test", "name": "z"},
            content_type="application/json",
        ).status_code
        == 404
    )
    parameters = client.get("/api/finetune/parameters/").json()
    assert {
        "name": "lora_r",
        "label": "LoRA rank",
        "type": "int",
        "default": 16,
        "minimum": None,
        "maximum": None,
        "choices": [4, 8, 16, 32, 64],
        "help": "Adapter capacity.",
    } in parameters


def test_schema_includes_the_finetune_endpoints(admin_client):
    schema = admin_client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/finetune/runs/{run_id}/metrics/" in schema.content


def socket_accepts(user, run_id: int) -> tuple[bool, int | None]:
    async def attempt() -> tuple[bool, int | None]:
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/finetune/runs/{run_id}/")
        communicator.scope["user"] = user
        connected, code = await communicator.connect()
        if connected:
            snapshot = await communicator.receive_json_from()
            assert snapshot["type"] == "snapshot" and snapshot["metrics"][0]["step"] == 1
        await communicator.disconnect()
        return connected, code

    return async_to_sync(attempt)()


def test_only_the_team_and_admins_may_watch_a_run(transactional_db, red_run, teams, admin_user):
    assert socket_accepts(teams["alice"], red_run.pk)[0]
    assert socket_accepts(admin_user, red_run.pk)[0]
    assert socket_accepts(teams["bob"], red_run.pk) == (False, 4404)
    assert socket_accepts(AnonymousUser(), red_run.pk) == (False, 4401)


def test_pages_list_launch_and_monitor(client, tiny_model, training_files, teams, red_run):
    client.force_login(teams["alice"])
    index = client.get("/finetune/")
    assert b"red-run" in index.content and b"Start New Finetune" in index.content
    project = red_run.project
    dialog = client.get(f"/finetune/new/?project={project.pk}&model=tiny-test")
    assert dialog.status_code == 200
    for text in (b"lora_r", b"from 1e-05 to 0.003", b"Train embeddings", b"Keep it smaller", b"GPU 0"):
        assert text in dialog.content
    refused = client.post(
        "/finetune/new/",
        {"project": project.pk, "model": "tiny-test", "name": "ui-run", "batch_size": "2", "low_gpu_mem_mode": "on"},
    )
    assert refused.status_code == 400 and b"batch_size: 2 is not allowed; use from 4 to 1024" in refused.content
    assert not FinetuneRun.objects.filter(name="ui-run").exists()
    started = client.post(
        "/finetune/new/",
        {"project": project.pk, "model": "tiny-test", "name": "ui-run", "keep_smaller": "on", "lr": "1e-4"},
    )
    run = FinetuneRun.objects.get(name="ui-run")
    assert started.status_code == 302 and run.keep_smaller and run.parameters["lr"] == 1e-4
    assert run.parameters["low_gpu_mem_mode"] is False  # an unticked box is off
    monitor = client.get(f"/finetune/runs/{red_run.pk}/")
    for text in (
        b"ft-chart",
        b"Logs",
        b"Checkpoints",
        b"Parameters",
        b"Files",
        b"iter0001-testloss5.500",
        b"/ws/finetune/runs/",
    ):
        assert text in monitor.content
    client.post(f"/finetune/runs/{run.pk}/cancel/")
    assert FinetuneRun.objects.get(pk=run.pk).status == "cancelled"
    client.post(f"/finetune/runs/{run.pk}/delete/")
    assert not FinetuneRun.objects.filter(pk=run.pk).exists()
    client.force_login(teams["bob"])
    assert client.get(f"/finetune/runs/{red_run.pk}/").status_code == 404
