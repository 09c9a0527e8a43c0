"""The plugin ASGI app (`hosting.asgi`) that serves completions, chat and embeddings in production.

Its answers must be those of the Django views it shares its logic with; what only it does (reading
the body, a client that hangs up, an unexpected error) is tested here. Streams through it, and a
client hanging up mid-stream, are in test_plugin_api_live.py (daphne serves this app there).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.test import override_settings

from hosting.asgi import PluginRequest, plugin_app
from hosting.plugin_selectors import served_models_forget
from tests.support.server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dead_server(tiny_model):
    url = f"http://127.0.0.1:{free_port()}"
    with override_settings(REFACT_INFERENCE_SERVERS=[f"tiny-test={url}"]):
        served_models_forget()
        yield url
    served_models_forget()


def through_app(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    from refact_site.asgi import application

    encoded = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def scenario() -> dict[str, Any]:
        return await HttpCommunicator(application, method, path, body=body, headers=encoded).get_response(timeout=20)

    response = async_to_sync(scenario)()
    response["headers"] = {name.decode().lower(): value.decode() for name, value in response["headers"]}
    return response


CASES = {
    "no key": ("POST", "/v1/completions", {"prompt": "x"}, None),
    "unknown key": ("POST", "/v1/completions", {"prompt": "x"}, "rfx_0000000000000000.nope"),
    "not json": ("POST", "/v1/completions", b"{", "KEY"),
    "bad field": ("POST", "/v1/chat/completions", {"messages": [{"role": "wizard"}]}, "KEY"),
    "unknown model": ("POST", "/v1/completions", {"model": "nope", "prompt": "x"}, "KEY"),
    "unknown lora": ("POST", "/v1/completions", {"model": "tiny-test:run9:ckpt1", "prompt": "x"}, "KEY"),
    "wrong method": ("GET", "/v1/completions", None, "KEY"),
    "server down": ("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1}, "KEY"),
    "server down, streamed": ("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1, "stream": True}, "KEY"),
    "embeddings of a completion model": ("POST", "/v1/embeddings", {"model": "tiny-test", "input": "x"}, "KEY"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_app_answers_as_the_django_view(client, admin_user, api_key_for, dead_server, case) -> None:
    method, path, body, key = CASES[case]
    key = api_key_for(admin_user) if key == "KEY" else key
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    django = client.generic(method, path, data=data, content_type="application/json", headers=headers)
    app = through_app(method, path, data, headers)
    assert app["status"] == django.status_code, (case, app["body"][:300])
    assert django.status_code >= 400
    assert json.loads(app["body"]) == django.json(), case
    for header in ("content-type", "retry-after", "www-authenticate"):
        assert app["headers"].get(header) == django.headers.get(header), (case, header)
    assert int(app["headers"]["content-length"]) == len(app["body"])


def test_an_unexpected_error_is_a_json_500_and_logged(monkeypatch, caplog) -> None:
    async def broken(request):
        raise RuntimeError("boom")

    monkeypatch.setattr("hosting.asgi.answer", broken)
    with caplog.at_level(logging.ERROR, logger="hosting.asgi"):
        response = through_app("POST", "/v1/completions", b"{}", {})
    assert response["status"] == 500
    assert json.loads(response["body"])["error"]["type"] == "api_error"
    assert "boom" not in response["body"].decode()  # the reason stays in the log
    assert any("boom" in record.getMessage() or record.exc_info for record in caplog.records)


def test_a_client_that_hangs_up_before_its_body_ends_gets_nothing(monkeypatch) -> None:
    called = []

    async def answer(request):
        called.append(request)

    monkeypatch.setattr("hosting.asgi.answer", answer)
    messages = [{"type": "http.request", "body": b'{"pro', "more_body": True}, {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}
    async_to_sync(plugin_app)(scope, receive, send)
    assert sent == [] and called == []


def test_the_request_carries_what_authentication_reads() -> None:
    scope = {
        "method": "POST",
        "path": "/v1/chat/completions",
        "client": ("10.0.0.7", 5123),
        "headers": [
            (b"authorization", b"Bearer rfx_1.2"),
            (b"x-forwarded-for", b"1.1.1.1"),
            (b"x-forwarded-for", b"2.2.2.2"),
            (b"accept", b"application/json"),
        ],
    }
    request = PluginRequest(scope, b"{}")
    assert request.META["HTTP_AUTHORIZATION"] == "Bearer rfx_1.2"
    assert request.META["REMOTE_ADDR"] == "10.0.0.7"
    # Repeated headers are joined as Django joins them, so the first hop is the same either way.
    assert request.META["HTTP_X_FORWARDED_FOR"] == "1.1.1.1,2.2.2.2"
    assert request.headers["Accept"] == "application/json"
    assert (request.method, request.path, request.body) == ("POST", "/v1/chat/completions", b"{}")


@override_settings(REFACT_PLUGIN_MAX_INFLIGHT=1)
def test_a_request_cancelled_before_relaying_gives_its_slot_back(monkeypatch, admin_user, api_key_for) -> None:
    """The key's slot is taken before the key check (with the failed-attempt counters, in one trip to
    Redis); a request cancelled there (the server stopping) gives it back and stops renewing it."""
    from hosting import limits, plugin_api
    from hosting.plugin_api import error_response

    key = api_key_for(admin_user)
    checking = threading.Event()

    def slow_check(*args, **kwargs):
        checking.set()
        time.sleep(0.5)
        return error_response(400, "never seen")

    monkeypatch.setattr(plugin_api, "_prepare_guarded", slow_check)
    headers = [(b"authorization", f"Bearer {key}".encode())]
    request = PluginRequest({"method": "POST", "path": "/v1/completions", "headers": headers}, b"{}")

    async def scenario() -> None:
        answering = asyncio.ensure_future(plugin_api.answer(request))
        assert await asyncio.to_thread(checking.wait, 10)
        answering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await answering
        slot, _ = await limits.limit_admit(key[4:].split(".")[0])
        assert isinstance(slot, limits.Slot)  # the only slot of the key is free again
        await limits.limit_release(slot)

    asyncio.run(scenario())


@pytest.fixture
def silent_server(tiny_model):
    """An inference server that answers a stream's headers and first event, then says nothing more
    (or, for a request with "max_tokens": 2, sends no headers at all), holding the connection open."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            request = b""
            while b"\r\n\r\n" not in request or not request.rstrip().endswith(b"}"):
                piece = connection.recv(65536)
                if not piece:  # a pooled connection closed unused
                    break
                request += piece
            if not request or b'"max_tokens": 2' in request:
                continue  # no headers
            event = b'data: {"choices": [{"text": "a", "index": 0}]}\n\n'
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x\r\n" % len(event)
                + event
                + b"\r\n"
            )

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    with override_settings(REFACT_INFERENCE_SERVERS=[f"tiny-test={url}"], REFACT_UPSTREAM_READ_TIMEOUT=1):
        served_models_forget()
        yield url
    served_models_forget()
    listener.close()
    for connection in held:
        connection.close()


def test_an_inference_server_gone_silent_ends_the_stream_after_the_read_timeout(
    admin_user, api_key_for, silent_server
) -> None:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key_for(admin_user)}"}
    body = json.dumps({"prompt": "x", "max_tokens": 5, "stream": True}).encode()
    started = time.monotonic()
    response = through_app("POST", "/v1/completions", body, headers)
    took = time.monotonic() - started
    assert response["status"] == 200
    events = [line for line in response["body"].decode().split("\n") if line.startswith("data: ")]
    assert json.loads(events[0][6:])["choices"][0]["text"] == "a"  # relayed before the silence
    # Our watch's error (aiohttp's own read timeout would be a SocketTimeoutError).
    assert "(ServerTimeoutError)" in json.loads(events[1][6:])["error"]["message"]
    assert events[-1] == "data: [DONE]"
    assert 0.9 < took < 5, took

    # Before the headers, aiohttp's own read timeout applies: a 503 after the same second.
    started = time.monotonic()
    silent = through_app("POST", "/v1/completions", json.dumps({"prompt": "x", "max_tokens": 2}).encode(), headers)
    assert silent["status"] == 503 and "did not answer in time" in silent["body"].decode(), silent["body"][:300]
    assert 0.9 < time.monotonic() - started < 5
