"""The inference server is killed (SIGKILL) while it streams a completion through our server.

Real parts throughout: the official `openai` client → `manage.py serve` → the inference server that
the worker's supervisor started for the assignment. The client gets a clean OpenAI-shaped error
event (the openai client raises APIError with our message), and the supervisor brings the server back.
"""

from __future__ import annotations

import os
import signal

import httpx
import openai
import pytest

from hosting.models import InferenceServer
from hosting.services import model_assign
from tests.support.server import running_server, running_worker, wait_until

pytestmark = [pytest.mark.services_only, pytest.mark.django_db(transaction=True)]
PROMPT = "def fibonacci(n):\n    "


def ready_server() -> InferenceServer | None:
    return InferenceServer.objects.filter(assignment__model="tiny-test", state="ready").first()


def test_inference_killed_mid_stream_gives_an_error_chunk_and_is_restarted(tiny_model, admin_user, api_key_for):
    key = api_key_for(admin_user)
    with running_worker(REFACT_WORKER_NAME="fault-inference-worker"), running_server() as server:
        wait_until(_node_alive, timeout=60, message="the worker node to register its devices")
        model_assign(actor=None, model="tiny-test", n_ctx=512, concurrency=2)
        wait_until(lambda: ready_server() is not None, timeout=120, interval=0.5, message="the inference server")
        first = ready_server()
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)

        stream = client.completions.create(
            model="tiny-test",
            prompt=PROMPT,
            max_tokens=400,  # with the prompt, within the 512-token context
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        received = 0
        with pytest.raises(openai.APIError) as raised:
            for _chunk in stream:
                received += 1
                if received == 3:
                    os.kill(first.pid, signal.SIGKILL)
        assert 3 <= received < 400
        assert "inference server of 'tiny-test' broke off the stream" in raised.value.message
        assert raised.value.body["type"] == "server_error" and raised.value.body["code"] == 503

        # Until the restart a new request is answered at once (503 naming the model), never left hanging.
        refused = httpx.post(
            f"{server.url}/v1/completions",
            json={"model": "tiny-test", "prompt": PROMPT, "max_tokens": 4},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert refused.status_code in (200, 503), refused.text
        if refused.status_code == 503:
            assert refused.headers["Retry-After"] and refused.json()["error"]["message"]

        def restarted() -> bool:
            server_row = ready_server()
            return server_row is not None and server_row.pid != first.pid

        wait_until(restarted, timeout=120, interval=0.5, message="the supervisor to restart the inference server")
        row = InferenceServer.objects.get(assignment__model="tiny-test")
        assert row.restarts == 1
        again = client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=4, temperature=0)
        assert again.usage.completion_tokens >= 1
    # The broken stream is counted as failed in the usage statistics, not as served.
    from stats.models import CompletionServed

    wait_until(
        lambda: CompletionServed.objects.filter(streamed=True, status=503).exists(),
        timeout=10,
        message="the broken stream in the statistics",
    )


def _node_alive() -> bool:
    from hosting.models import WorkerNode

    return WorkerNode.objects.filter(name="fault-inference-worker").exclude(devices=[]).exists()
