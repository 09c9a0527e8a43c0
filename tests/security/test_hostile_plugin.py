"""Prompt and parameter extremes on the plugin API, against a real inference server on the tiny model.

Every answer is a 400 naming the field, a 404 naming the model, or a real completion: never a 5xx.
tests/hosting/test_plugin_api.py has the basic refusals (a missing prompt, temperature 5, a bad role);
this file has the extremes around them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import override_settings

from hosting.plugin_selectors import served_models_forget
from tests.security.conftest import bearer
from tests.support.inference import running_inference_server

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def inference(tiny_model_weights):
    with running_inference_server(model_dir=settings.DATA_DIR / tiny_model_weights, extra=["--n-ctx", "1024"]) as p:
        yield p


@pytest.fixture
def served(inference, tiny_model):
    with override_settings(REFACT_INFERENCE_SERVERS=[f"tiny-test={inference.url}"]):
        served_models_forget()
        yield inference
    served_models_forget()


@pytest.fixture
def key(admin_user, api_key_for) -> str:
    return api_key_for(admin_user)


def post(client, path: str, body: Any, key: str):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **bearer(key))


REFUSED_COMPLETIONS = [
    ({"prompt": "x", "max_tokens": 1_000_000}, "max_tokens"),  # allowed by the serializer, never fits 1024
    ({"prompt": "x", "max_tokens": 1024}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 10**30}, "max_tokens"),
    ({"prompt": "x", "max_tokens": -1}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 2.5}, "max_tokens"),
    ({"prompt": "x", "max_tokens": True}, "max_tokens"),
    ({"prompt": "x", "max_tokens": "1e9"}, "max_tokens"),
    ({"prompt": "x", "temperature": -0.1}, "temperature"),
    ({"prompt": "x", "temperature": "NaN"}, "temperature"),  # passes DRF's range check unless refused
    ({"prompt": "x", "temperature": "nan"}, "temperature"),
    ({"prompt": "x", "temperature": "-inf"}, "temperature"),
    ({"prompt": "x", "temperature": 1e309}, "body"),  # the JSON number overflows to Infinity
    ({"prompt": "x", "top_p": "NaN"}, "top_p"),
    ({"prompt": "x", "top_p": 1.0001}, "top_p"),
    ({"prompt": "x", "stop": ["a"] * 5}, "stop"),
    ({"prompt": "x", "stop": ["s"] * 100_000}, "stop"),
    ({"prompt": "x", "stop": ["x" * 201]}, "stop"),
    ({"prompt": "x", "stop": [["nested"]]}, "stop"),
    ({"prompt": "x", "stop": {"a": 1}}, "stop"),
    ({"prompt": "x", "stop": 7}, "stop"),
    ({"prompt": "x", "n": 0}, "n"),
    ({"prompt": "x", "n": 10**6}, "n"),
    ({"prompt": "x", "seed": 2**64}, "seed"),
    ({"prompt": 123}, "prompt"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": {"text": "x"}}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"prompt": "x" * 4_000_001}, "prompt"),
    ({"prompt": "bad \ud800 surrogate"}, "prompt"),
    ({"prompt": "a\x00b"}, "prompt"),
    ({"prompt": "x", "stop": ["\udfff"]}, "stop"),
    ({"prompt": "x", "model": None}, "model"),
    ({"prompt": "x", "model": "m" * 301}, "model"),
    ({"prompt": "x", "stream": "maybe"}, "stream"),
    ({"prompt": "x", "echo": [1]}, "echo"),
    ({"prompt": "x", "project": "p" * 101}, "project"),
]


@pytest.mark.parametrize(
    ("body", "field"), REFUSED_COMPLETIONS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(REFUSED_COMPLETIONS)]
)
def test_completion_extremes_are_400_naming_the_field(client, served, key, body, field) -> None:
    response = post(client, "/v1/completions", body, key)
    assert response.status_code == 400, response.content[:300]
    answer = response.json()
    assert answer["field"] == field, answer
    assert answer["error"]["param"] == field and answer["error"]["type"] == "invalid_request_error"


def test_a_prompt_longer_than_the_context_is_400_with_the_context_size(client, served, key) -> None:
    response = post(client, "/v1/completions", {"prompt": "token " * 300_000, "max_tokens": 5}, key)
    assert response.status_code == 400
    assert response.json()["field"] == "prompt" and response.json()["n_ctx"] == 1024


REFUSED_CHAT = [
    ({"messages": []}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "messages.content"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "http://x/"}]}]},
        "messages.content",
    ),
    ({"messages": [{"role": "user", "content": "x" * 4_000_001}]}, "messages.content"),
    ({"messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content"),
    ({"messages": [{"content": "no role"}]}, "messages.role"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "NaN"}, "temperature"),
]


@pytest.mark.parametrize(("body", "field"), REFUSED_CHAT, ids=[f"{f}-{i}" for i, (_, f) in enumerate(REFUSED_CHAT)])
def test_chat_extremes_are_400_naming_the_field(client, served, key, body, field) -> None:
    response = post(client, "/v1/chat/completions", body, key)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["field"] == field, response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"input": ["x"] * 2049},
        {"input": ["x" * 100_001]},
        {"input": 5},
        {"input": [None]},
        {"input": ["\ud800"]},
    ],
)
def test_embedding_extremes_are_400(client, served, key, body) -> None:
    response = post(client, "/v1/embeddings", body, key)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["field"].startswith("input")


@pytest.mark.parametrize(
    "model", ["no-such-model", "tiny-test:", "tiny-test:run:ckpt:extra", "../../etc/passwd", "tiny\x00test", "5"]
)
def test_unknown_models_are_404_naming_them(client, served, key, model) -> None:
    response = post(client, "/v1/completions", {"prompt": "x", "model": model}, key)
    assert response.status_code in (400, 404), response.content[:300]
    assert response.status_code == 400 or response.json()["field"] == "model"


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "", "max_tokens": 1},  # empty prompt, empty model: the default model answers
        {"prompt": "a\x01\u202e\ufeff\U0001f600", "max_tokens": 2, "model": ""},
        {"prompt": "def f(", "max_tokens": 1, "temperature": 0, "top_p": 0},
        {"prompt": "def f(", "max_tokens": 1, "temperature": 2, "top_p": 1, "seed": -(2**63)},
        {"prompt": "def f(", "max_tokens": 2, "stop": ["x" * 200, "\n", " ", "def"]},
        {"prompt": ["def f("], "max_tokens": 1, "echo": True},
    ],
)
def test_extremes_inside_the_limits_are_answered_by_the_model(client, served, key, body) -> None:
    response = post(client, "/v1/completions", body, key)
    assert response.status_code == 200, response.content[:300]
    answer = response.json()
    assert answer["choices"] and isinstance(answer["caps_version"], int)


def test_extremes_in_a_stream_end_with_done(async_client, served, key) -> None:
    body = json.dumps({"prompt": "\u200b" * 50, "max_tokens": 3, "stream": True})

    async def scenario() -> tuple[int, bytes]:
        # Request and stream in one event loop: the upstream connection belongs to it.
        response = await async_client.post(
            "/v1/completions", data=body, content_type="application/json", headers={"Authorization": f"Bearer {key}"}
        )
        return response.status_code, b"".join([chunk async for chunk in response.streaming_content])

    status, content = async_to_sync(scenario)()
    assert status == 200
    assert content.decode().rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize(
    "model",
    ["../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "tiny-test/../../secret", "/etc/passwd"],
)
def test_tokenizer_paths_are_catalogue_names_never_file_paths(client, key, tiny_model, model) -> None:
    response = client.get(f"/tokenizer/{model}", **bearer(key))
    assert response.status_code == 404, response.content[:200]
    assert b"root:" not in response.content
