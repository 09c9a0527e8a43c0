"""The Model Hosting page and the Settings integrations section: rendered, and their forms work."""

from __future__ import annotations

import pytest

from hosting.models import IntegrationSettings, ModelAssignment


def test_empty_page_explains_what_to_do(admin_client):
    page = admin_client.get("/hosting/").content.decode()
    assert "No models hosted yet" in page and "No worker is online" in page
    assert "Connect the IDE plugins" in page and "http://testserver" in page
    assert "data leaves" in page or "third-party provider" in page


def test_add_model_assigns_and_shows_devices_status_and_finetune_row(admin_client, make_node, tiny_model):
    make_node("node-a", gpus=[16000])
    page = admin_client.get("/hosting/").content.decode()
    assert 'id="add-model"' in page and "tiny-test" in page and "cap-finetune" in page
    response = admin_client.post("/hosting/assign/", {"model": "tiny-test", "gpus": "0", "n_ctx": "256"}, follow=True)
    page = response.content.decode()
    assert "tiny-test assigned to node-a (cpu)" in page
    assert ModelAssignment.objects.get().n_ctx == 256
    assert "waiting" in page and "Finetune" in page and "off: the base model alone" in page
    assert "16000 MB" in page

    response = admin_client.post("/hosting/assign/", {"model": "qwen2.5/coder/7b/base", "gpus": "1"}, follow=True)
    assert "needs 20000 MB on each of 1 GPU" in response.content.decode()
    response = admin_client.post("/hosting/assign/", {"model": "tiny-test", "n_ctx": "lots"}, follow=True)
    assert "n_ctx must be a whole number" in response.content.decode()

    response = admin_client.post("/hosting/lora/", {"model": "tiny-test", "mode": "best_of_latest"}, follow=True)
    assert "no completed fine-tune run yet" in response.content.decode()
    response = admin_client.post(
        "/hosting/lora/", {"model": "tiny-test", "mode": "specific", "run": "r1", "checkpoint": "c1"}, follow=True
    )
    assert "no checkpoint &#x27;c1&#x27; of run &#x27;r1&#x27;" in response.content.decode()
    response = admin_client.post("/hosting/unassign/", {"model": "tiny-test"}, follow=True)
    assert "tiny-test is no longer hosted" in response.content.decode()


def test_users_see_but_cannot_change(client, django_user_model, make_node, tiny_model):
    client.force_login(django_user_model.objects.create_user("dev", "dev@example.com", "dev-password-1"))
    make_node("node-a")
    page = client.get("/hosting/").content.decode()
    assert "Add Model" not in page and "Devices" in page
    response = client.post("/hosting/assign/", {"model": "tiny-test"}, follow=True)
    assert "Only an administrator" in response.content.decode()
    assert not ModelAssignment.objects.exists()


@pytest.mark.parametrize("where", ["/settings/", "/hosting/"])
def test_openai_switch(admin_client, where):
    page = admin_client.get(where).content.decode()
    assert "Integrations: OpenAI" in page and "third-party provider (OpenAI)" in page
    response = admin_client.post(
        "/hosting/openai/",
        {"enabled": "on", "api_key": "sk-" + "k" * 40, "models": ["gpt-4o"], "next": where},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == where
    assert "OpenAI integration saved" in response.content.decode()
    row = IntegrationSettings.objects.get()
    assert row.openai_enabled and row.openai_models == ["gpt-4o"] and "kkkk" not in row.openai_key_encrypted
    response = admin_client.post("/hosting/openai/", {"models": ["gpt-4o"], "next": "//evil.example"}, follow=True)
    assert response.redirect_chain[-1][0] == "/hosting/"
    assert (
        not IntegrationSettings.objects.get().openai_enabled and IntegrationSettings.objects.get().openai_key_encrypted
    )


def test_admin_lists_and_actions(admin_client, make_node, tiny_model):
    from hosting.services import integration_openai_save, model_assign

    make_node("node-a")
    model_assign(actor=None, model="tiny-test")
    integration_openai_save(actor=None, enabled=True, api_key="sk-" + "z" * 40)
    for url in (
        "/admin/hosting/workernode/",
        "/admin/hosting/modelassignment/",
        "/admin/hosting/inferenceserver/",
        "/admin/hosting/integrationsettings/",
        "/admin/hosting/integrationsettings/1/change/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert b"zzzz" not in response.content
    pk = ModelAssignment.objects.get().pk
    response = admin_client.post(
        "/admin/hosting/modelassignment/", {"action": "unassign", "_selected_action": [pk]}, follow=True
    )
    assert response.status_code == 200 and not ModelAssignment.objects.exists()
