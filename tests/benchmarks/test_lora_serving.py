"""benchmarks/lora_serving.py, kept runnable: a short real run on the transformers back end (the tiny
model, a real peft adapter, two real inference servers) and the vLLM command line it would start."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import lora_serving  # noqa: E402  (a script beside its own helpers)


def test_short_run_on_the_transformers_back_end(tiny_model_weights):
    argv = ["--model-dir", str(settings.DATA_DIR / tiny_model_weights), "--rank", "8", "--tokens", "4"]
    result = lora_serving.run(
        lora_serving.parse_args([*argv, "--concurrency", "1,3", "--per-stream", "1", "--rounds", "1"])
    )
    for streams in (1, 3):
        figures = result[f"streams_{streams}"]
        assert figures["base_tokens_per_s"] > 0 and figures["lora_tokens_per_s"] > 0
        ratio = figures["lora_tokens_per_s"] / figures["base_tokens_per_s"]
        assert figures["ratio"] == pytest.approx(ratio, rel=0.02)  # computed from the unrounded rates
        assert 0 < figures["lora_first_token_p50_ms"] < 60_000


def test_vllm_servers_are_started_as_the_supervisor_starts_them(tmp_path):
    (tmp_path / "adapter").mkdir()  # made by peft on the GPU machine; here its config stands for it
    (tmp_path / "adapter" / "adapter_config.json").write_text('{"r": 16}')
    args = lora_serving.parse_args(["--backend", "vllm", "--model-dir", "/models/qwen"])
    base = lora_serving.server_command(args, port=9001, adapter=None)
    lora = lora_serving.server_command(args, port=9002, adapter=tmp_path / "adapter")
    assert base[1:3] == ["serve", "/models/qwen"] and "--enable-lora" not in base
    assert base[-2:] == ["--port", "9001"] and "--gpu-memory-utilization" in base
    assert lora[lora.index("--max-lora-rank") + 1] == "16"
    assert f"{lora_serving.LORA}={tmp_path / 'adapter'}" in lora and lora[-2:] == ["--port", "9002"]
