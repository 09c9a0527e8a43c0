"""The evaluation's generation: batched, left-padded prompts give what one prompt at a time gives."""

from __future__ import annotations

import pytest
import torch
from django.conf import settings

from gpu_worker import finetune_core as core
from hosting.catalogue import QWEN_FIM
from tests.finetune.conftest import stdlib_corpus


@pytest.fixture(scope="module")
def tiny(tiny_model_weights):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = settings.DATA_DIR / tiny_model_weights
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_batched_generation_agrees_with_one_prompt_at_a_time(tiny):
    model, tokenizer = tiny
    cases = core.held_out_lines([path.read_text() for path in stdlib_corpus(3)], count=10, seed=42)
    options = {"ctx": 128, "device": torch.device("cpu")}
    batched = core.fim_first_lines(model, tokenizer, QWEN_FIM, cases, batch=8, **options)
    alone = core.fim_first_lines(model, tokenizer, QWEN_FIM, cases, batch=1, **options)
    assert len(batched) == len(cases)
    assert batched == alone
    assert any(batched)  # the tiny model writes something, so the comparison means something
