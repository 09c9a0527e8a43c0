"""The plugin API in-process: auth, routing, validation, limits and failures that need no model.

The paths that need a real inference server are in test_plugin_api_live.py.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from hosting.plugin_selectors import served_models_forget
from tests.support.server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dead_server(tiny_model):
    """tiny-test routed to a port nobody listens on."""
    url = f"http://127.0.0.1:{free_port()}"
    with override_settings(REFACT_INFERENCE_SERVERS=[f"tiny-test={url}", f"tiny-test:run1:ckpt10={url}"]):
        served_models_forget()
        yield url
    served_models_forget()


@pytest.fixture
def admin_key(admin_user, api_key_for):
    return api_key_for(admin_user)


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def post(client, path: str, body, key: str):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **bearer(key))


def test_caps_need_an_api_key(client):
    response = client.get("/refact-caps")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    response = client.get("/refact-caps", HTTP_AUTHORIZATION="Bearer rfx_0000000000000000.nope")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid API key"


def test_completions_need_an_api_key(client):
    response = client.post("/v1/completions", data="{}", content_type="application/json")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_caps_in_refact_format(client, admin_key, dead_server):
    caps = client.get("/refact-caps", **bearer(admin_key)).json()
    assert caps["completion"]["endpoint"] == "/v1/completions"
    assert caps["completion"]["default_model"] == "tiny-test"
    tiny = caps["completion"]["models"]["tiny-test"]
    assert tiny["n_ctx"] == 1024
    assert tiny["supports_scratchpads"]["FIM-PSM"]["fim_prefix"] == "<|fim_prefix|>"
    assert "tiny-test:run1:ckpt10" in caps["completion"]["models"]
    assert caps["chat"]["endpoint"] == "/v1/chat/completions"
    assert caps["chat"]["default_model"] == "tiny-test"
    assert caps["telemetry_endpoints"]["telemetry_basic_endpoint"] == "/stats/telemetry-basic"
    assert caps["tokenizer_endpoints"]["tiny-test"] == "/tokenizer/tiny-test"
    assert isinstance(caps["caps_version"], int)
    assert client.get("/coding_assistant_caps.json", **bearer(admin_key)).json() == caps


def test_caps_version_changes_with_the_served_models(client, admin_key, dead_server):
    before = client.get("/refact-caps", **bearer(admin_key)).json()["caps_version"]
    assert client.get("/refact-caps", **bearer(admin_key)).json()["caps_version"] == before
    with override_settings(REFACT_INFERENCE_SERVERS=[f"tiny-test={dead_server}"]):  # the LoRA is switched off
        served_models_forget()
        after = client.get("/refact-caps", **bearer(admin_key)).json()["caps_version"]
    assert after != before


def test_models_and_login(client, admin_key, dead_server):
    models = client.get("/v1/models", **bearer(admin_key)).json()
    assert [m["id"] for m in models["data"]] == ["tiny-test", "tiny-test:run1:ckpt10"]
    assert models["data"][1]["parent"] == "tiny-test"
    login = client.get("/v1/login", **bearer(admin_key)).json()
    assert login["retcode"] == "OK"
    assert login["account"] == "admin"


def test_unknown_model_and_lora_are_404_naming_them(client, admin_key, dead_server):
    response = post(client, "/v1/completions", {"model": "no-such-model", "prompt": "x"}, admin_key)
    assert response.status_code == 404
    assert "no-such-model" in response.json()["detail"]
    response = post(client, "/v1/completions", {"model": "tiny-test:other:ckpt1", "prompt": "x"}, admin_key)
    assert response.status_code == 404
    assert "tiny-test:other:ckpt1" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "tiny-test"}, "prompt"),
        ({"prompt": "x", "temperature": 5}, "temperature"),
        ({"prompt": "x", "max_tokens": "many"}, "max_tokens"),
        ({"prompt": "x", "stop": [1, 2]}, "stop"),
        ("not json", "body"),
        ([1, 2], "body"),
    ],
)
def test_malformed_body_is_400_naming_the_field(client, admin_key, dead_server, body, field):
    response = post(client, "/v1/completions", body, admin_key)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_chat_messages_are_validated(client, admin_key, dead_server):
    response = post(client, "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, admin_key)
    assert response.status_code == 400
    assert response.json()["field"] == "messages.role"


def test_over_long_prompt_is_400_with_the_context_size(client, admin_key, dead_server):
    prompt = "def function_number_one(argument):\n    return argument\n" * 200
    response = post(client, "/v1/completions", {"prompt": prompt, "max_tokens": 10}, admin_key)
    assert response.status_code == 400
    body = response.json()
    assert body["n_ctx"] == 1024
    assert "1024" in body["detail"]
    assert body["field"] == "prompt"


def test_inference_server_down_is_503_with_retry_after(client, admin_key, dead_server):
    response = post(client, "/v1/completions", {"model": "tiny-test", "prompt": "def"}, admin_key)
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "tiny-test" in response.json()["detail"]


def test_no_model_served_is_503(client, admin_key, db):
    served_models_forget()
    response = post(client, "/v1/completions", {"prompt": "def"}, admin_key)
    assert response.status_code == 503
    assert response["Retry-After"]


def test_rate_limit_per_key_is_429_with_retry_after(client, admin_user, api_key_for, dead_server):
    key, other = api_key_for(admin_user, "first"), api_key_for(admin_user, "second")
    with override_settings(REFACT_PLUGIN_RATE_LIMIT=2, REFACT_PLUGIN_RATE_WINDOW=3600):
        statuses = [post(client, "/v1/completions", {"prompt": "x"}, key).status_code for _ in range(3)]
        assert statuses == [503, 503, 429]
        refused = post(client, "/v1/completions", {"prompt": "x"}, key)
        assert 0 < int(refused["Retry-After"]) <= 3600
        assert "rate limit" in refused.json()["detail"]
        # Another key of the same user has its own budget.
        assert post(client, "/v1/completions", {"prompt": "x"}, other).status_code == 503


def test_tokenizer_served_from_the_weights(client, admin_key, dead_server):
    response = client.get("/tokenizer/tiny-test", **bearer(admin_key))
    assert response.status_code == 200
    tokenizer = json.loads(b"".join(response.streaming_content))
    assert "<|fim_prefix|>" in {token["content"] for token in tokenizer["added_tokens"]}
    assert client.get("/tokenizer/unknown-model", **bearer(admin_key)).status_code == 404


def test_every_plugin_endpoint_is_in_the_schema(admin_client):
    import yaml

    schema = yaml.safe_load(admin_client.get("/api/schema/").content)
    for path in (
        "/refact-caps",
        "/coding_assistant_caps.json",
        "/v1/login",
        "/v1/models",
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/tokenizer/{model}",
        "/stats/telemetry-basic",
        "/stats/telemetry-snippets",
        "/stats/rh-stats",
    ):
        assert path in schema["paths"], path
    completions = schema["paths"]["/v1/completions"]["post"]
    assert "prompt" in json.dumps(completions["requestBody"]) or "CompletionInput" in json.dumps(completions)


def test_model_still_loading_is_503_with_retry_after(client, admin_key, tiny_model, monkeypatch):
    from hosting import plugin_selectors
    from hosting.selectors import ServingEndpoint

    loading = ServingEndpoint(model="tiny-test", url="http://127.0.0.1:9", state="loading", reason="", n_ctx=1024)
    monkeypatch.setattr(plugin_selectors, "serving_endpoints", lambda: [loading])
    served_models_forget()
    response = post(client, "/v1/completions", {"model": "tiny-test", "prompt": "def"}, admin_key)
    served_models_forget()
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "loading" in response.json()["detail"]
