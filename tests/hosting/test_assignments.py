"""Assignments and placement: what fits where, refusals with the reason, commands, LoRA modes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from hosting.models import ModelAssignment
from hosting.services import lora_activate, model_assign, model_unassign
from refact_site.exceptions import ApplicationError, NotFoundError


def test_no_node_online_is_refused(db):
    with pytest.raises(ApplicationError, match="no worker node is online"):
        model_assign(actor=None, model="qwen2.5/coder/1.5b/base", gpus=1)
    assert not ModelAssignment.objects.exists()


def test_gpu_placement_exclusive_and_shared(make_node):
    make_node("node-a", gpus=[24000, 24000])
    first = model_assign(actor=None, model="qwen2.5/coder/1.5b/base", backend="vllm", gpus=1)
    assert (first.node, first.devices, first.n_ctx) == ("node-a", ["cuda:0"], 8192)
    second = model_assign(actor=None, model="qwen2.5/coder/0.5b/base", backend="transformers", gpus=1)
    assert second.devices == ["cuda:1"]
    with pytest.raises(ApplicationError, match="is taken by") as error:
        model_assign(actor=None, model="deepseek-coder/1.3b/base", gpus=1)
    assert error.value.field == "gpus"
    assert ModelAssignment.objects.count() == 2


def test_shared_gpus_hold_several_models_while_memory_lasts(make_node):
    make_node("node-a", gpus=[16000])
    model_assign(actor=None, model="qwen2.5/coder/1.5b/base", gpus=1, share_gpu=True)  # 6000 MB
    model_assign(actor=None, model="deepseek-coder/1.3b/base", gpus=1, share_gpu=True)  # 5000 MB
    with pytest.raises(ApplicationError, match="has 5000 MB free"):
        model_assign(actor=None, model="qwen2.5/coder/1.5b/instruct", gpus=1, share_gpu=True)  # 6000 MB
    model_assign(actor=None, model="qwen2.5/coder/0.5b/base", gpus=1, share_gpu=True)  # 3000 MB fits
    assert all(a.devices == ["cuda:0"] for a in ModelAssignment.objects.all())
    assert ModelAssignment.objects.count() == 3


def test_sharding_rules(make_node):
    make_node("node-a", gpus=[12000, 12000])
    with pytest.raises(ApplicationError, match="at most 1 GPU"):
        model_assign(actor=None, model="qwen2.5/coder/1.5b/base", gpus=2)
    with pytest.raises(ApplicationError, match="0 \\(CPU\\), 1, 2 or 4"):
        model_assign(actor=None, model="qwen2.5/coder/7b/base", gpus=3)
    with pytest.raises(ApplicationError, match="largest online node has 2"):
        model_assign(actor=None, model="qwen2.5/coder/7b/base", gpus=4)
    with pytest.raises(ApplicationError, match="needs 20000 MB on each of 1"):
        model_assign(actor=None, model="qwen2.5/coder/7b/base", gpus=1)
    sharded = model_assign(actor=None, model="qwen2.5/coder/7b/base", backend="vllm", gpus=2)
    assert sharded.devices == ["cuda:0", "cuda:1"]


def test_cpu_and_backend_refusals(make_node, tiny_model):
    make_node("cpu-only")
    with pytest.raises(ApplicationError, match="too large for a CPU"):
        model_assign(actor=None, model="qwen2.5/coder/1.5b/base", gpus=0)
    with pytest.raises(ApplicationError, match="largest online node has 0"):
        model_assign(actor=None, model="qwen2.5/coder/1.5b/base")
    with pytest.raises(ApplicationError, match="vLLM back end needs at least one GPU"):
        model_assign(actor=None, model="tiny-test", backend="vllm", gpus=0)
    with pytest.raises(ApplicationError, match="no online node can run vLLM"):
        model_assign(actor=None, model="tiny-test", backend="vllm", gpus=1)
    with pytest.raises(ApplicationError, match="cannot run on vllm"):
        model_assign(actor=None, model="all-minilm-l6-v2", backend="vllm", gpus=1)
    with pytest.raises(ApplicationError, match="n_ctx must be between 1 and 1024"):
        model_assign(actor=None, model="tiny-test", n_ctx=4096)
    with pytest.raises(NotFoundError, match="no-such"):
        model_assign(actor=None, model="no-such/model")
    assignment = model_assign(actor=None, model="tiny-test", n_ctx=512)
    assert (assignment.backend, assignment.gpus, assignment.devices, assignment.n_ctx) == (
        "transformers",
        0,
        ["cpu"],
        512,
    )
    # Changing it keeps what was not given.
    again = model_assign(actor=None, model="tiny-test", concurrency=4)
    assert (again.n_ctx, again.concurrency, ModelAssignment.objects.count()) == (512, 4, 1)


def test_lora_modes(make_node, tiny_model):
    make_node("cpu-only")
    with pytest.raises(NotFoundError, match="not hosted"):
        lora_activate(actor=None, model="tiny-test", mode="off")
    model_assign(actor=None, model="tiny-test")
    assignment = lora_activate(actor=None, model="tiny-test", mode="best_of_latest")
    lora_activate(actor=None, model="tiny-test", mode="best_of_latest")  # idempotent
    assert assignment.loras.count() == 1
    with pytest.raises(NotFoundError, match="run 'nope'"):
        lora_activate(actor=None, model="tiny-test", mode="specific", run="nope", checkpoint="ckpt-1")
    with pytest.raises(ApplicationError, match="mode must be"):
        lora_activate(actor=None, model="tiny-test", mode="sideways")
    assert lora_activate(actor=None, model="tiny-test", mode="off").loras.count() == 0


def test_commands(make_node, tiny_model):
    make_node("cpu-only")
    out = StringIO()
    call_command("model_assign", "tiny-test", "--n-ctx", "256", stdout=out)
    assert "assigned tiny-test: transformers on cpu-only (cpu), context 256" in out.getvalue()
    with pytest.raises(CommandError, match="too large for a CPU"):
        call_command("model_assign", "qwen2.5/coder/1.5b/base", "--gpus", "0")
    out = StringIO()
    call_command("lora_activate", "tiny-test", "--best-of-latest", stdout=out)
    assert "LoRAs served: none" in out.getvalue() and "no completed fine-tune run" in out.getvalue()
    with pytest.raises(CommandError, match="no checkpoint 'c1' of run 'r1'"):
        call_command("lora_activate", "tiny-test", "--run", "r1", "--checkpoint", "c1")
    with pytest.raises(CommandError, match="--checkpoint needs --run"):
        call_command("lora_activate", "tiny-test", "--best-of-latest", "--checkpoint", "c1")
    call_command("lora_activate", "tiny-test", "--off", stdout=StringIO())
    call_command("model_unassign", "tiny-test", stdout=StringIO())
    assert not ModelAssignment.objects.exists()
    with pytest.raises(CommandError, match="not hosted"):
        call_command("model_unassign", "tiny-test")
    with pytest.raises(NotFoundError):
        model_unassign(actor=None, model="tiny-test")


def test_openai_key_is_encrypted_at_rest(db):
    from hosting.models import IntegrationSettings
    from hosting.selectors import openai_api_key, openai_integration
    from hosting.services import integration_openai_save

    with pytest.raises(ApplicationError, match="save an API key"):
        integration_openai_save(actor=None, enabled=True)
    with pytest.raises(ApplicationError, match="unknown OpenAI model"):
        integration_openai_save(actor=None, enabled=False, api_key="sk-" + "a" * 40, models=["gpt-99"])
    key = "sk-test-" + "b" * 40
    integration_openai_save(actor=None, enabled=True, api_key=key, models=["gpt-4o-mini"])
    row = IntegrationSettings.objects.get()
    assert key not in row.openai_key_encrypted and row.openai_key_encrypted
    assert openai_api_key() == key
    assert openai_integration().models == ("gpt-4o-mini",) and openai_integration().enabled
    integration_openai_save(actor=None, enabled=False)  # the key is kept, just off
    assert openai_api_key() is None and openai_integration().has_key


def test_fingerprint_changes_with_models_loras_and_integrations(make_node, tiny_model):
    from hosting.selectors import hosting_fingerprint
    from hosting.services import integration_openai_save

    make_node("cpu-only")
    seen = {hosting_fingerprint()}
    model_assign(actor=None, model="tiny-test")
    seen.add(hosting_fingerprint())
    lora_activate(actor=None, model="tiny-test", mode="best_of_latest")
    seen.add(hosting_fingerprint())
    integration_openai_save(actor=None, enabled=True, api_key="sk-" + "f" * 40, models=["gpt-4o"])
    seen.add(hosting_fingerprint())
    assert len(seen) == 4
    assert hosting_fingerprint() == hosting_fingerprint()
