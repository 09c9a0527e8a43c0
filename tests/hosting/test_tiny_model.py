from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings

from hosting.catalogue import COMPLETION, FINETUNE
from hosting.models import RegisteredModel
from hosting.selectors import model_catalogue, model_get
from tests.support.server import REPO, server_environment


def test_create_tiny_model_builds_and_registers_it(transactional_db):
    result = subprocess.run(
        [sys.executable, "manage.py", "create_tiny_model", "tiny/demo"],
        cwd=REPO,
        env=server_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "created tiny/demo" in result.stdout
    spec = model_get("tiny/demo")
    assert spec.cpu_capable and spec.supports(COMPLETION) and spec.supports(FINETUNE)
    assert (settings.DATA_DIR / spec.weights / "model.safetensors").exists()
    assert "tiny/demo" in [model.name for model in model_catalogue()]

    again = subprocess.run(
        [sys.executable, "manage.py", "create_tiny_model", "tiny/demo"],
        cwd=REPO,
        env=server_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    assert RegisteredModel.objects.count() == 1


def test_the_tiny_model_is_a_real_model_with_fim_and_chat(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = model_get("tiny-test")
    path = settings.DATA_DIR / spec.weights
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    for token in spec.fim.special_tokens:
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    prompt = spec.fim.prompt("def add(a, b):\n    return ", "\n")
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat.endswith("<|im_start|>assistant\n")


def test_lora_attaches_to_the_catalogue_target_modules(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    spec = model_get("tiny-test")
    model = AutoModelForCausalLM.from_pretrained(settings.DATA_DIR / spec.weights)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(spec.lora_target_modules)))
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert 0 < trainable < total


@pytest.mark.parametrize("name", ["bad name", "", "x" * 101, "qwen2.5/coder/1.5b/base"])
def test_bad_model_names_are_refused(db, name):
    from hosting.services import tiny_model_create
    from refact_site.exceptions import ApplicationError

    with pytest.raises(ApplicationError):
        tiny_model_create(name=name)
