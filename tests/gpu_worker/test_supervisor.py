"""The supervisor starts a real inference server subprocess for an assignment, reports it, restarts it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import openai
import pytest
from django.utils import timezone

from gpu_worker.supervisor import Supervisor, launch_spec, vllm_command
from hosting.models import InferenceServer, ModelAssignment, WorkerNode
from hosting.selectors import serving_endpoints
from hosting.services import model_assign, model_unassign
from tests.support.server import wait_until

CPU = {"id": "cpu", "kind": "cpu", "name": "cpu", "memory_total_mb": 16000, "memory_free_mb": 8000}


@pytest.fixture
def supervisor(db, tiny_model):
    WorkerNode.objects.create(name="sup-node", hostname="h", pid=os.getpid(), devices=[CPU], backends=["transformers"])
    supervisor = Supervisor(node="sup-node", poll_seconds=0.2)
    yield supervisor
    supervisor.stop()


def reconcile_until(supervisor: Supervisor, predicate, message: str, timeout: float = 90) -> None:
    def step() -> bool:
        # The runtime's heartbeat keeps the node alive; here the test beats for it.
        WorkerNode.objects.filter(name=supervisor.node).update(heartbeat_at=timezone.now())
        supervisor.reconcile()
        return predicate()

    wait_until(step, timeout=timeout, interval=0.3, message=message)


def state() -> tuple[str, str]:
    server = InferenceServer.objects.filter(assignment__model="tiny-test").first()
    return (server.state, server.reason) if server else ("", "")


@pytest.mark.services_only  # three server starts: once is enough
def test_supervisor_serves_restarts_and_stops(supervisor):
    model_assign(actor=None, model="tiny-test", n_ctx=256, concurrency=4)
    supervisor.reconcile()
    assert state()[0] == "loading"
    assert [e.state for e in serving_endpoints()] == ["loading"]
    reconcile_until(supervisor, lambda: state()[0] == "ready", "the server to be ready")

    (endpoint,) = serving_endpoints()
    assert (endpoint.model, endpoint.state, endpoint.n_ctx, endpoint.loras) == ("tiny-test", "ready", 256, ())
    client = openai.OpenAI(base_url=f"{endpoint.url}/v1", api_key="unused", max_retries=0)
    text = client.completions.create(model="tiny-test", prompt="def f(x):", max_tokens=4, temperature=0)
    assert text.usage.completion_tokens >= 1
    assert httpx.get(f"{endpoint.url}/health").json()["n_ctx"] == 256

    # Killed: reported failed with the exit code, restarted after the backoff, ready again.
    pid = InferenceServer.objects.get().pid
    os.kill(pid, signal.SIGKILL)
    reconcile_until(supervisor, lambda: state()[0] == "failed", "the crash to be reported", timeout=20)
    assert "exited with code -9" in state()[1]
    reconcile_until(supervisor, lambda: state()[0] == "ready", "the restart", timeout=90)
    server = InferenceServer.objects.get()
    assert server.restarts == 1 and server.pid != pid

    # A configuration change restarts it with the new settings.
    model_assign(actor=None, model="tiny-test", n_ctx=128)
    reconcile_until(
        supervisor,
        lambda: state()[0] == "ready" and InferenceServer.objects.get().n_ctx == 128,
        "the restart with the new context",
    )
    assert httpx.get(f"{serving_endpoints()[0].url}/health").json()["n_ctx"] == 128

    # Unassigned: the process stops.
    pid = InferenceServer.objects.get().pid
    model_unassign(actor=None, model="tiny-test")
    supervisor.reconcile()
    assert supervisor.servers == {}
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert serving_endpoints() == []


def test_a_server_that_cannot_load_is_failed_with_the_reason(supervisor, settings, tmp_path):
    from hosting.models import RegisteredModel

    RegisteredModel.objects.filter(name="tiny-test").update(weights=str(tmp_path / "gone"))
    model_assign(actor=None, model="tiny-test")
    reconcile_until(supervisor, lambda: state()[0] == "failed", "the load failure")
    assert "gone" in state()[1] or "exited" in state()[1]


def test_orphaned_assignments_move_to_a_live_node(supervisor):
    model_assign(actor=None, model="tiny-test")
    ModelAssignment.objects.update(node="dead-node")
    supervisor._claim_orphans()
    assert ModelAssignment.objects.get().node == "sup-node"


def test_launch_spec_for_the_transformers_backend(supervisor):
    assignment = model_assign(actor=None, model="tiny-test", n_ctx=300, concurrency=3)
    launch = launch_spec(assignment)
    argv = list(launch.argv)
    assert argv[1:3] == ["-m", "gpu_worker.inference_server"]
    assert argv[argv.index("--n-ctx") + 1] == "300" and argv[argv.index("--max-batch") + 1] == "3"
    assert json.loads(argv[argv.index("--fim") + 1])["middle_token"] == "<|fim_middle|>"
    assert argv[argv.index("--device") + 1] == "cpu" and launch.env == ()


def test_vllm_command_construction(tmp_path):
    adapters = []
    for name, rank in (("a", 8), ("b", 24)):
        path = tmp_path / name
        path.mkdir()
        (path / "adapter_config.json").write_text(json.dumps({"r": rank}))
        adapters.append((f"qwen:run-{name}:ckpt-10", Path(path)))
    argv = vllm_command(
        model_dir="/data/models/qwen",
        served_name="qwen2.5/coder/7b/base",
        n_ctx=4096,
        gpus=2,
        concurrency=16,
        memory_fraction=0.4,
        loras=adapters,
    )
    assert argv[:3] == ["vllm", "serve", "/data/models/qwen"]
    pairs = {argv[i]: argv[i + 1] for i in range(3, len(argv) - 1) if argv[i].startswith("--")}
    assert pairs["--served-model-name"] == "qwen2.5/coder/7b/base"
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--max-model-len"] == "4096"
    assert pairs["--gpu-memory-utilization"] == "0.40"
    assert pairs["--max-loras"] == "2" and pairs["--max-lora-rank"] == "32"
    assert "--enable-lora" in argv
    modules = argv[argv.index("--lora-modules") + 1 :]
    assert modules == [f"qwen:run-a:ckpt-10={tmp_path / 'a'}", f"qwen:run-b:ckpt-10={tmp_path / 'b'}"]
    plain = vllm_command(
        model_dir="m", served_name="m", n_ctx=2048, gpus=1, concurrency=8, memory_fraction=None, loras=[]
    )
    assert "--enable-lora" not in plain and "--gpu-memory-utilization" not in plain


def test_vllm_launch_spec_for_a_shared_gpu(db):
    WorkerNode.objects.create(
        name="gpu-node",
        hostname="g",
        pid=1,
        devices=[
            {"id": "cuda:0", "kind": "gpu", "name": "g", "memory_total_mb": 24000, "memory_free_mb": 24000},
            {"id": "cuda:1", "kind": "gpu", "name": "g", "memory_total_mb": 24000, "memory_free_mb": 24000},
            CPU,
        ],
        backends=["transformers", "vllm"],
    )
    model_assign(actor=None, model="qwen2.5/coder/0.5b/base", backend="vllm", gpus=1)
    shared = model_assign(actor=None, model="qwen2.5/coder/1.5b/base", backend="vllm", gpus=1, share_gpu=True)
    launch = launch_spec(shared)
    argv = list(launch.argv)
    assert dict(launch.env) == {"CUDA_VISIBLE_DEVICES": "1"}
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.25"  # 6000 of 24000 MB
    assert argv[argv.index("--tensor-parallel-size") + 1] == "1"


def test_lora_of_a_finetune_run_is_served_by_its_published_name(supervisor, settings):
    """best of latest → the run's best checkpoint, loaded by the server, chosen per request."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from finetune.models import FinetuneRun
    from finetune.services import run_checkpoint_record
    from hosting.selectors import model_get
    from hosting.services import lora_activate
    from projects.services import project_create

    project = project_create(name="lora-demo")
    run = FinetuneRun.objects.create(name="run1", project=project, base_model="tiny-test", status=FinetuneRun.COMPLETED)
    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_pretrained(settings.DATA_DIR / model_get("tiny-test").weights)
    adapter = get_peft_model(
        base, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    for name, loss in (("ckpt-10", 2.5), ("ckpt-20", 2.1)):
        path = settings.DATA_DIR / "loras-test" / name
        adapter.save_pretrained(path)
        run_checkpoint_record(run=run, name=name, step=int(name[5:]), train_loss=None, test_loss=loss, path=path)

    model_assign(actor=None, model="tiny-test")
    lora_activate(actor=None, model="tiny-test", mode="best_of_latest")
    lora_activate(actor=None, model="tiny-test", mode="specific", run="run1", checkpoint="ckpt-10")
    reconcile_until(supervisor, lambda: state()[0] == "ready", "the server with LoRAs to be ready")
    (endpoint,) = serving_endpoints()
    assert endpoint.loras == ("tiny-test:run1:ckpt-20", "tiny-test:run1:ckpt-10")
    client = openai.OpenAI(base_url=f"{endpoint.url}/v1", api_key="unused", max_retries=0)
    prompt = "def fibonacci(n):\n    "
    outputs = {
        name: client.completions.create(model=name, prompt=prompt, max_tokens=10, temperature=0).choices[0].text
        for name in ("tiny-test", "tiny-test:run1:ckpt-20")
    }
    assert outputs["tiny-test"] != outputs["tiny-test:run1:ckpt-20"]
