from __future__ import annotations

from hosting.catalogue import CAPABILITIES, COMPLETION, FINETUNE, STATIC_MODELS
from hosting.selectors import model_get


def test_every_completion_model_has_a_fim_format_and_lora_targets():
    for spec in STATIC_MODELS:
        assert spec.capabilities <= set(CAPABILITIES)
        if spec.supports(COMPLETION):
            assert spec.fim is not None, spec.name
        if spec.supports(FINETUNE):
            assert spec.lora_target_modules, spec.name
        assert spec.max_shards in (1, 2, 4)


def test_fim_prompts_follow_each_family_format(db):
    qwen = model_get("qwen2.5/coder/1.5b/base")
    assert qwen.fim.prompt("def f(", "\n") == "<|fim_prefix|>def f(<|fim_suffix|>\n<|fim_middle|>"
    deepseek = model_get("deepseek-coder/1.3b/base")
    assert deepseek.fim.prompt("a", "b") == "<｜fim▁begin｜>a<｜fim▁hole｜>b<｜fim▁end｜>"
    assert model_get("no/such/model") is None
