"""What an active LoRA costs in serving, in one run: tokens/s and time to first token of a LoRA adapter
against the same model without one, at 1 and 32 concurrent streams; target >= 0.8x of the base.

Two inference servers on the same weights, started the way the supervisor starts them: one serving
the base model alone, one with the adapter (vLLM: `--enable-lora`, rank and count from the adapter;
transformers: `--lora`). Rounds alternate between them so that both see the same machine load.

    python benchmarks/lora_serving.py [--backend transformers|vllm] [--model-dir DIR] [--device cpu|cuda:0]
        [--rank 16] [--tokens 64] [--concurrency 1,32] [--per-stream 2] [--rounds 3]

vLLM runs on a GPU machine with the worker's requirements and a model of an architecture it supports
(--model-dir). Without --model-dir the tiny model is built in a temporary directory (transformers only:
its heads are too small for vLLM's attention kernels). The adapter is a random peft LoRA on the
attention projections, of rank --rank.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from api_overhead import PROMPTS  # scripts: their own folder is on sys.path
from stack import REPO, free_port, wait_for

BASE, LORA = "bench", "bench:lora:best"


def adapter_make(model_dir: Path, target: Path, rank: int) -> Path:
    """A peft LoRA adapter on the attention projections, randomly initialised (so it changes the output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(target)
    return target


def server_command(args: argparse.Namespace, *, port: int, adapter: Path | None) -> list[str]:
    loras = [(LORA, adapter)] if adapter else []
    if args.backend == "vllm":
        from gpu_worker.supervisor import vllm_command

        argv = vllm_command(
            model_dir=str(args.model_dir),
            served_name=BASE,
            n_ctx=args.n_ctx,
            gpus=1,
            concurrency=max(args.concurrency),
            memory_fraction=0.4,  # two servers on one GPU
            loras=loras,
        )
        return [*argv, "--port", str(port)]
    argv = [sys.executable, "-m", "gpu_worker.inference_server", "--model-dir", str(args.model_dir)]
    argv += ["--served-name", BASE, "--port", str(port), "--device", args.device, "--n-ctx", str(args.n_ctx)]
    argv += ["--max-batch", str(max(args.concurrency))]
    return argv + [arg for name, path in loras for arg in ("--lora", f"{name}={path}")]


async def one(client, url: str, model: str, prompt: str, tokens: int) -> float:
    """Streams one completion of exactly TOKENS tokens; returns the seconds to its first token."""
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True}
    body["ignore_eos"] = True
    started, first, finish = time.perf_counter(), None, None
    async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        if response.status_code != 200:
            raise SystemExit(f"{model}: {response.status_code} {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            choice = json.loads(line[6:])["choices"][0]
            if first is None and choice.get("text"):
                first = time.perf_counter() - started
            finish = choice.get("finish_reason") or finish
    if finish != "length":  # fewer tokens than asked: the tokens/s below would be wrong
        raise SystemExit(f"{model}: the completion ended with {finish!r}, not after {tokens} tokens")
    return first if first is not None else time.perf_counter() - started


async def measure(url: str, model: str, streams: int, per_stream: int, tokens: int) -> tuple[float, list[float]]:
    """Tokens/s of STREAMS concurrent streams of PER_STREAM completions each, and every time to first token."""
    import httpx

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=streams * 2)) as client:

        async def runner(offset: int) -> list[float]:
            prompts = (PROMPTS[(offset + index) % len(PROMPTS)] for index in range(per_stream))
            return [await one(client, url, model, prompt, tokens) for prompt in prompts]

        started = time.perf_counter()
        firsts = await asyncio.gather(*(runner(offset) for offset in range(streams)))
        seconds = time.perf_counter() - started
    return streams * per_stream * tokens / seconds, [value for values in firsts for value in values]


def run(args: argparse.Namespace) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    if args.model_dir is None:
        if args.backend == "vllm":
            raise SystemExit("--backend vllm needs --model-dir: a model of an architecture vLLM supports")
        from gpu_worker.tiny_model import build_tiny_model

        args.model_dir = workdir / "tiny"
        build_tiny_model(args.model_dir)
    adapter = adapter_make(Path(args.model_dir), workdir / "adapter", args.rank)
    urls, processes = {}, []
    logs = open(workdir / "servers.log", "wb")  # noqa: SIM115
    try:
        for name, with_adapter in ((BASE, None), (LORA, adapter)):
            port = free_port()
            command = server_command(args, port=port, adapter=with_adapter)
            processes.append(subprocess.Popen(command, cwd=REPO, stdout=logs, stderr=subprocess.STDOUT))  # noqa: S603
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_for(f"{url}/health", timeout=args.start_timeout)
        for name, url in urls.items():  # warm-up: first requests compile kernels and fill caches
            asyncio.run(measure(url, name, max(args.concurrency), 1, args.tokens))
        rates: dict[tuple[str, int], list[float]] = {}
        firsts: dict[tuple[str, int], list[float]] = {}
        for round_index in range(args.rounds):
            order = list(urls) if round_index % 2 == 0 else list(reversed(urls))
            for streams in args.concurrency:
                for name in order:
                    rate, ttft = asyncio.run(measure(urls[name], name, streams, args.per_stream, args.tokens))
                    rates.setdefault((name, streams), []).append(rate)
                    firsts.setdefault((name, streams), []).extend(ttft)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        logs.close()
    result: dict[str, object] = {"backend": args.backend, "model": str(args.model_dir), "lora_rank": args.rank}
    result["tokens_per_request"] = args.tokens
    for streams in args.concurrency:
        base, lora = (statistics.median(rates[name, streams]) for name in (BASE, LORA))
        result[f"streams_{streams}"] = {
            "base_tokens_per_s": round(base, 1),
            "lora_tokens_per_s": round(lora, 1),
            "ratio": round(lora / base, 3),
            "base_first_token_p50_ms": round(statistics.median(firsts[BASE, streams]) * 1000, 1),
            "lora_first_token_p50_ms": round(statistics.median(firsts[LORA, streams]) * 1000, 1),
        }
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--device", default="cpu", help="transformers only: cpu or cuda:N")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per completion")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--concurrency", type=lambda text: [int(part) for part in text.split(",")], default=[1, 32])
    parser.add_argument("--per-stream", type=int, default=2, help="completions per stream and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds for the servers to load")
    return parser.parse_args(argv)


def main() -> None:
    result = run(parse_args())
    print(json.dumps(result, indent=2))  # noqa: T201
    for key, figures in result.items():
        if key.startswith("streams_"):
            ratio = figures["ratio"]  # type: ignore[index]
            print(  # noqa: T201
                f"{key.removeprefix('streams_')} streams: LoRA {ratio:.3f}x of the base model's tokens/s "
                f"(target >= 0.8: {'ok' if ratio >= 0.8 else 'MISSED'}); first token "
                f"{figures['lora_first_token_p50_ms']} ms against {figures['base_first_token_p50_ms']} ms"  # type: ignore[index]
            )


if __name__ == "__main__":
    main()
