"""Stage-2 filter throughput: files/s batched by length against one file at a time, in one run.

Both compute each file's mean loss under the same base model with `finetune_core.file_losses`, the
function the pipeline runs, batched with the token budget the pipeline uses on this device
(`FILTER_BATCH_TOKENS`); "one at a time" gives it a budget of one file per batch. The two
alternate for several rounds and the medians are compared. The losses must agree (batching with
padding and an attention mask must not change a file's loss).

    python benchmarks/filter.py [--files 120] [--ctx 1024] [--rounds 3] [--threads 2] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=120, help="standard-library modules to filter")
    parser.add_argument("--ctx", type=int, default=1024, help="tokens of each file the loss is computed on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--model-dir", help="weights (default: the tiny model, built here)")
    parser.add_argument("--gpu", action="store_true", help="run on cuda:0")
    args = parser.parse_args()

    import torch

    from benchmarks.finetune import corpus, model_dir_or_tiny
    from gpu_worker import finetune_core as core

    torch.set_num_threads(args.threads)
    model_dir = model_dir_or_tiny(args.model_dir)
    device = core.pick_device([0] if args.gpu else [])
    model, tokenizer = core.load_base(model_dir, device)
    texts: list[str | None] = list(corpus(args.files))

    def measure(batch_tokens: int) -> tuple[float, list[float | None]]:
        started = time.perf_counter()
        losses = core.file_losses(model, tokenizer, texts, ctx=args.ctx, device=device, batch_tokens=batch_tokens)
        return len(texts) / (time.perf_counter() - started), losses

    batched_budget = core.FILTER_BATCH_TOKENS[device.type == "cuda"]  # what the pipeline uses here
    measure(batched_budget)  # warm-up
    batched_rates, single_rates = [], []
    batched_losses = single_losses = []
    for round_index in range(args.rounds):
        order = [(batched_budget, batched_rates), (0, single_rates)]
        for budget, rates in order if round_index % 2 == 0 else order[::-1]:
            rate, losses = measure(budget)
            rates.append(rate)
            if budget:
                batched_losses = losses
            else:
                single_losses = losses
    differences = [abs(a - b) for a, b in zip(batched_losses, single_losses, strict=True) if a is not None and b]
    batched, single = statistics.median(batched_rates), statistics.median(single_rates)
    result = {
        "files": len(texts),
        "batch_tokens": batched_budget,
        "ctx": args.ctx,
        "batched_files_per_s": round(batched, 2),
        "one_at_a_time_files_per_s": round(single, 2),
        "speedup": round(batched / single, 3),
        "max_loss_difference": max(differences, default=0.0),
    }
    print(json.dumps(result, indent=2))  # noqa: T201
    print(f"stage-2 filter: batched {batched:.1f} files/s, one at a time {single:.1f} files/s: {batched / single:.2f}x")  # noqa: T201


if __name__ == "__main__":
    main()
