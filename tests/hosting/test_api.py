"""REST API under /api/hosting/: reads for users, writes for admins, errors naming the field."""

from __future__ import annotations

import pytest

from hosting.models import ModelAssignment

TINY = "/api/hosting/assignments/tiny-test/"


@pytest.fixture
def user_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("dev", "dev@example.com", "dev-password-1"))
    return client


def test_devices_catalogue_and_assignments(admin_client, make_node, tiny_model):
    make_node("node-a", gpus=[24000])
    created = admin_client.post(
        "/api/hosting/assignments/", {"model": "tiny-test", "gpus": 0, "n_ctx": 256}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["model"], body["node"], body["devices"], body["state"]) == ("tiny-test", "node-a", ["cpu"], "waiting")

    gpu = admin_client.post(
        "/api/hosting/assignments/",
        {"model": "qwen2.5/coder/1.5b/base", "backend": "vllm", "gpus": 1},
        content_type="application/json",
    )
    assert gpu.status_code == 201
    devices = admin_client.get("/api/hosting/devices/").json()
    (node,) = devices
    by_id = {d["id"]: d for d in node["devices"]}
    assert by_id["cuda:0"]["models"] == ["qwen2.5/coder/1.5b/base"] and by_id["cpu"]["models"] == ["tiny-test"]
    assert by_id["cuda:0"]["memory_total_mb"] == 24000 and node["alive"]

    catalogue = {m["name"]: m for m in admin_client.get("/api/hosting/catalogue/").json()}
    assert catalogue["tiny-test"]["hosted"] and "completion" in catalogue["tiny-test"]["capabilities"]
    assert catalogue["qwen2.5/coder/7b/base"]["required_memory_mb"] == 20000

    # A model name with slashes works in the URL.
    detail = admin_client.get("/api/hosting/assignments/qwen2.5/coder/1.5b/base/")
    assert detail.status_code == 200 and detail.json()["backend"] == "vllm"
    changed = admin_client.patch(TINY, {"n_ctx": 128}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["n_ctx"] == 128
    assert admin_client.delete(TINY).status_code == 204
    assert admin_client.get(TINY).status_code == 404

    from accounts.models import AuditEntry

    actions = list(AuditEntry.objects.filter(actor_name="admin").values_list("action", flat=True))
    assert actions.count("hosting.model_assign") == 2
    assert "hosting.model_reassign" in actions and "hosting.model_unassign" in actions


def test_bad_input_and_refusals(admin_client, make_node, tiny_model):
    make_node("cpu-only")
    response = admin_client.post(
        "/api/hosting/assignments/", {"model": "tiny-test", "gpus": 9}, content_type="application/json"
    )
    assert response.status_code == 400 and "gpus" in response.json()
    response = admin_client.post(
        "/api/hosting/assignments/", {"model": "qwen2.5/coder/7b/base", "gpus": 1}, content_type="application/json"
    )
    assert response.status_code == 409 and response.json()["field"] == "gpus"
    assert "largest online node has 0" in response.json()["detail"]
    response = admin_client.post("/api/hosting/assignments/", {"model": "nope"}, content_type="application/json")
    assert response.status_code == 404 and "nope" in response.json()["detail"]
    assert not ModelAssignment.objects.exists()


def test_lora_mode(admin_client, make_node, tiny_model):
    make_node("cpu-only")
    admin_client.post("/api/hosting/assignments/", {"model": "tiny-test"}, content_type="application/json")
    response = admin_client.post(f"{TINY}loras/", {"mode": "best_of_latest"}, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["loras"][0]["mode"] == "best_of_latest" and body["lora_problems"]
    response = admin_client.post(
        f"{TINY}loras/", {"mode": "specific", "run": "r1", "checkpoint": "c9"}, content_type="application/json"
    )
    assert response.status_code == 404 and response.json()["field"] == "checkpoint"
    response = admin_client.post(f"{TINY}loras/", {"mode": "maybe"}, content_type="application/json")
    assert response.status_code == 400 and "mode" in response.json()
    selection = body["loras"][0]["id"]
    assert admin_client.delete(f"{TINY}loras/{selection}/").status_code == 204
    assert admin_client.get(TINY).json()["loras"] == []


def test_users_read_but_do_not_write(user_client, client, make_node, tiny_model):
    make_node("cpu-only")
    assert user_client.get("/api/hosting/devices/").status_code == 200
    assert user_client.get("/api/hosting/assignments/").status_code == 200
    response = user_client.post("/api/hosting/assignments/", {"model": "tiny-test"}, content_type="application/json")
    assert response.status_code == 403
    assert user_client.get("/api/hosting/integrations/openai/").status_code == 403
    client.logout()
    assert client.get("/api/hosting/devices/").status_code in (401, 403)


def test_openai_integration(admin_client):
    response = admin_client.put(
        "/api/hosting/integrations/openai/",
        {"enabled": True, "api_key": "sk-" + "x" * 40, "models": ["gpt-4o"]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["enabled"] and body["has_key"] and "api_key" not in body and "third-party" in body["warning"]
    response = admin_client.put(
        "/api/hosting/integrations/openai/", {"enabled": True, "models": ["gpt-0"]}, content_type="application/json"
    )
    assert response.status_code == 400 and "models" in response.json()


def test_schema_includes_hosting(admin_client):
    response = admin_client.get("/api/schema/")
    assert response.status_code == 200 and b"/api/hosting/assignments/" in response.content
