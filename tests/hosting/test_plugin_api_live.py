"""The plugin API end to end: the official `openai` client → our server (daphne) → a real inference server
on the tiny model, with a real peft LoRA adapter. Answers through our API must equal the inference
server's own answers to the same greedy requests.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from django.conf import settings

from hosting.catalogue import QWEN_FIM
from tests.support.inference import running_inference_server
from tests.support.server import running_server, wait_until

pytestmark = [pytest.mark.services_only, pytest.mark.django_db(transaction=True)]

LORA = "tiny-test:run1:ckpt5"
PROMPT = "def fibonacci(n):\n    "
FIM_JSON = json.dumps(
    {
        "template": QWEN_FIM.template,
        "prefix_token": QWEN_FIM.prefix_token,
        "suffix_token": QWEN_FIM.suffix_token,
        "middle_token": QWEN_FIM.middle_token,
        "eot_token": QWEN_FIM.eot_token,
    }
)


@pytest.fixture(scope="module")
def lora_dir(tiny_model_weights, tmp_path_factory):
    """A real peft LoRA adapter on the tiny model, randomly initialised so that it changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(settings.DATA_DIR / tiny_model_weights)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    target = tmp_path_factory.mktemp("lora") / "adapter"
    get_peft_model(model, config).save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def inference(tiny_model_weights, lora_dir):
    extra = ["--fim", FIM_JSON, "--n-ctx", "1024", "--lora", f"{LORA}={lora_dir}"]
    with running_inference_server(model_dir=settings.DATA_DIR / tiny_model_weights, extra=extra) as process:
        yield process


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, inference):
    with running_server(
        REFACT_INFERENCE_SERVERS=f"tiny-test={inference.url},{LORA}={inference.url}",
        REFACT_PLUGIN_MAX_INFLIGHT="1",
    ) as process:
        yield process


@pytest.fixture
def alice_key(alice, api_key_for, tiny_model):
    return api_key_for(alice)


@pytest.fixture
def ours(server, alice_key):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=alice_key, max_retries=0, timeout=60)


@pytest.fixture
def direct(inference):
    return openai.OpenAI(base_url=f"{inference.url}/v1", api_key="unused", max_retries=0, timeout=60)


def greedy(client, **kwargs):
    return client.completions.create(temperature=0, **kwargs)


def test_completion_equals_the_inference_server(ours, direct):
    ours_answer = greedy(ours, model="tiny-test", prompt=PROMPT, max_tokens=12, extra_body={"ignore_eos": True})
    direct_answer = greedy(direct, model="tiny-test", prompt=PROMPT, max_tokens=12, extra_body={"ignore_eos": True})
    assert ours_answer.choices[0].text == direct_answer.choices[0].text
    assert ours_answer.usage.completion_tokens == 12
    assert ours_answer.choices[0].finish_reason == "length"


def test_streaming_completion_carries_caps_version(ours, server, alice_key):
    whole = greedy(ours, model="tiny-test", prompt=PROMPT, max_tokens=10, extra_body={"ignore_eos": True})
    streamed = greedy(
        ours, model="tiny-test", prompt=PROMPT, max_tokens=10, stream=True, extra_body={"ignore_eos": True}
    )
    assert "".join(chunk.choices[0].text for chunk in streamed if chunk.choices) == whole.choices[0].text
    caps_version = httpx.get(f"{server.url}/refact-caps", headers={"Authorization": f"Bearer {alice_key}"}).json()[
        "caps_version"
    ]
    body = {"model": "tiny-test", "prompt": PROMPT, "max_tokens": 4, "stream": True, "temperature": 0}
    headers = {"Authorization": f"Bearer {alice_key}"}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, headers=headers, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert all(json.loads(event)["caps_version"] == caps_version for event in events[:-1])


def test_fim_prompt_and_max_tokens(ours, direct):
    prompt = QWEN_FIM.prompt("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n")
    ours_answer = greedy(ours, model="tiny-test", prompt=prompt, max_tokens=6)
    direct_answer = greedy(direct, model="tiny-test", prompt=prompt, max_tokens=6)
    assert ours_answer.choices[0].text == direct_answer.choices[0].text
    assert ours_answer.usage.completion_tokens <= 6


def test_stop_sequence(ours):
    text = (
        greedy(ours, model="tiny-test", prompt=PROMPT, max_tokens=24, extra_body={"ignore_eos": True}).choices[0].text
    )
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), f"no usable stop sequence in {text!r}"
    stopped = greedy(
        ours, model="tiny-test", prompt=PROMPT, max_tokens=24, stop=[stop], extra_body={"ignore_eos": True}
    )
    assert stopped.choices[0].text == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_chat_streaming_and_not(ours, direct):
    messages = [{"role": "user", "content": "Write a loop in Python."}]
    kwargs = {"model": "tiny-test", "messages": messages, "max_tokens": 8, "temperature": 0}
    whole = ours.chat.completions.create(**kwargs)
    assert whole.choices[0].message.content == direct.chat.completions.create(**kwargs).choices[0].message.content
    streamed = ours.chat.completions.create(stream=True, **kwargs)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == whole.choices[0].message.content


def test_lora_by_name_gives_a_different_greedy_output(ours):
    base = greedy(ours, model="tiny-test", prompt=PROMPT, max_tokens=12, extra_body={"ignore_eos": True})
    tuned = greedy(ours, model=LORA, prompt=PROMPT, max_tokens=12, extra_body={"ignore_eos": True})
    assert tuned.choices[0].text != base.choices[0].text
    with pytest.raises(openai.NotFoundError, match="tiny-test:run1:ckpt6"):
        greedy(ours, model="tiny-test:run1:ckpt6", prompt=PROMPT, max_tokens=4)


def test_team_preference_changes_caps_and_routing(ours, server, alice, alice_key):
    from accounts.services import team_preference_set

    headers = {"Authorization": f"Bearer {alice_key}"}
    before = httpx.get(f"{server.url}/refact-caps", headers=headers).json()
    assert before["completion"]["default_model"] == "tiny-test"
    team_preference_set(team=alice.team, completion_model=LORA)
    time.sleep(1.1)  # the served-models snapshot lives one second
    after = httpx.get(f"{server.url}/refact-caps", headers=headers).json()
    assert after["completion"]["default_model"] == LORA
    assert after["caps_version"] != before["caps_version"]
    # A request naming no model follows the preference.
    unnamed = greedy(ours, model="", prompt=PROMPT, max_tokens=8, extra_body={"ignore_eos": True})
    tuned = greedy(ours, model=LORA, prompt=PROMPT, max_tokens=8, extra_body={"ignore_eos": True})
    assert unnamed.choices[0].text == tuned.choices[0].text


def test_auth_errors(server, tiny_model):
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="rfx_0000000000000000.wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="tiny-test", prompt="x", max_tokens=1)


def test_concurrent_cap_is_429_and_disconnect_stops_generation(server, inference, alice_key):
    body = {"model": "tiny-test", "prompt": PROMPT, "max_tokens": 900, "temperature": 0, "stream": True}
    body["ignore_eos"] = True
    headers = {"Authorization": f"Bearer {alice_key}"}
    before = httpx.get(f"{inference.url}/health").json()
    with httpx.Client(timeout=60) as first:
        with first.stream("POST", f"{server.url}/v1/completions", json=body, headers=headers) as one:
            lines = one.iter_lines()
            for _ in range(3):
                next(lines)
            # The key's one in-flight slot is taken by the stream still generating.
            refused = httpx.post(f"{server.url}/v1/completions", json=body, headers=headers, timeout=30)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert "at once" in refused.json()["detail"]
    # The clients went away mid-stream: the inference server cancels what it was still generating.
    wait_until(
        lambda: httpx.get(f"{inference.url}/health").json()["cancelled"] > before["cancelled"],
        timeout=15,
        message="the inference server to cancel the abandoned requests",
    )
    generated = httpx.get(f"{inference.url}/health").json()["generated_tokens"] - before["generated_tokens"]
    time.sleep(0.5)
    assert httpx.get(f"{inference.url}/health").json()["generated_tokens"] - before["generated_tokens"] == generated
    assert generated < 900
    # The in-flight slots were given back.
    again = httpx.post(f"{server.url}/v1/completions", json={**body, "stream": False, "max_tokens": 2}, headers=headers)
    assert again.status_code == 200


def test_usage_is_recorded_per_user_and_model(ours, alice):
    from stats.models import CompletionServed

    greedy(ours, model="tiny-test", prompt=PROMPT, max_tokens=2)
    wait_until(
        lambda: CompletionServed.objects.filter(user=alice, model="tiny-test", status=200).exists(),
        timeout=10,
        message="the completion to be recorded",
    )
    row = CompletionServed.objects.filter(user=alice).first()
    assert row.team_name == "team-a"
