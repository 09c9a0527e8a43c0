"""Tokens/s of our transformers inference server against a bare `model.generate` loop, in one run.

Same model, same prompts, same number of new tokens (EOS ignored), same torch thread count.
Prints the sequential ratio (one request at a time; target >= 0.9x) and, as extra information,
the throughput of concurrent requests batched by the server.

    python benchmarks/inference_cpu.py [--model-dir DIR] [--tokens 128] [--threads 1] [--concurrency 8]

Without --model-dir the tiny model is built in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = [
    "def fibonacci(n):\n    ",
    "import os\nimport sys\n\n\ndef main():\n    ",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        ",
    "# sort a list of numbers\ndef quicksort(values):\n",
    "for i in range(10):\n    print(",
    "def parse_args(argv):\n    parser = argparse.ArgumentParser()\n    ",
]


class Bare:
    def __init__(self, model_dir: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def __call__(self, tokens: int, rounds: int) -> float:
        import torch

        generated, started = 0, time.perf_counter()
        for _ in range(rounds):
            for prompt in PROMPTS:
                inputs = self.tokenizer(prompt, return_tensors="pt")
                with torch.inference_mode():
                    output = self.model.generate(
                        **inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0
                    )
                # Decoding the text is part of serving a completion, so the baseline does it too.
                self.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
                generated += output.shape[1] - inputs["input_ids"].shape[1]
        return generated / (time.perf_counter() - started)


def served(url: str, tokens: int, rounds: int, concurrency: int) -> float:
    import httpx

    client = httpx.Client(timeout=300)

    def one(prompt: str) -> int:
        body = {"model": "bench", "prompt": prompt, "max_tokens": tokens, "temperature": 0, "ignore_eos": True}
        response = client.post(f"{url}/v1/completions", json=body)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"]

    started = time.perf_counter()
    if concurrency == 1:
        generated = sum(one(prompt) for _ in range(rounds) for prompt in PROMPTS)
    else:
        counts: list[int] = []
        work = [prompt for _ in range(rounds) for prompt in PROMPTS]

        def runner(items: list[str]) -> None:
            for item in items:
                counts.append(one(item))

        threads = [threading.Thread(target=runner, args=(work[i::concurrency],)) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        generated = sum(counts)
    return generated / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    model_dir = args.model_dir
    if not model_dir:
        from gpu_worker.tiny_model import build_tiny_model

        model_dir = os.path.join(tempfile.mkdtemp(prefix="bench-tiny-"), "tiny")
        build_tiny_model(Path(model_dir))

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "gpu_worker.inference_server", "--model-dir", model_dir, "--served-name"]
    command += ["bench", "--port", str(port), "--threads", str(args.threads), "--max-batch", str(args.concurrency)]
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the inference server did not become ready")
            time.sleep(0.3)
        bare = Bare(model_dir)
        bare(args.tokens, 1)  # warm up both
        served(url, args.tokens, 1, 1)
        # Interleaved rounds, median of each: the machine's load drifts during a run.
        baselines, sequentials, concurrents = [], [], []
        for _ in range(args.rounds):
            baselines.append(bare(args.tokens, 1))
            sequentials.append(served(url, args.tokens, 1, 1))
            concurrents.append(served(url, args.tokens, 1, args.concurrency))
        baseline, sequential, concurrent = (statistics.median(v) for v in (baselines, sequentials, concurrents))
    finally:
        server.terminate()
        server.wait(10)
    print(f"model: {model_dir}  new tokens per request: {args.tokens}  torch threads: {args.threads}")
    print(f"bare model.generate loop:          {baseline:8.1f} tokens/s (baseline)")
    ratio = sequential / baseline
    print(f"server, sequential requests:       {sequential:8.1f} tokens/s  ratio {ratio:.2f}x (target >= 0.9x)")
    ratio = concurrent / baseline
    print(f"server, {args.concurrency:2d} concurrent (batched):  {concurrent:8.1f} tokens/s  ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
