"""Our LoRA training loop against a plain hand-written torch loop, in one run.

Both train the same tiny model with the same peft config on the same real code (this interpreter's
standard library) with the same batch; each run happens in its own fresh process, in alternating
order, so that neither inherits the other's memory or warm caches.
- ours: `gpu_worker.finetune_core` (FIM samples packed to the context, micro-batches with gradient
  accumulation, `train_step`): exactly the functions the pipeline runs;
- reference: a plain loop a developer would write: one FIM sample per row, padded to the context
  with an attention mask and ignored labels, `loss.backward()` and AdamW;
- reference_packed: the same plain loop on exactly our packed batches (what our loop costs beyond
  the math: scheduling, accumulation, clipping, fresh FIM spans each epoch).
Printed: tokens/s of real (non-padding) tokens, ours over reference (target >= 1.0), the fraction
of non-padding tokens in each loop's batches (target >= 0.95 for ours) and each loop's peak memory.

    python benchmarks/finetune.py [--steps 12] [--ctx 256] [--batch 8] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LORA = {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lora_init_scale": 0.01, "trainable_embeddings": False}
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
WARMUP_STEPS = 2


def corpus(count: int) -> list[str]:
    """Real Python code: small modules of this interpreter's standard library, in a stable order."""
    from gpu_worker.tiny_model import default_corpus

    small = [Path(path) for path in default_corpus(10_000) if 2_000 <= Path(path).stat().st_size <= 9_000]
    return [path.read_text(encoding="utf-8", errors="replace") for path in small[:count]]


def model_dir_or_tiny(model_dir: str | None) -> str:
    """The weights to benchmark: MODEL_DIR, else the tiny model built in a temporary directory."""
    if model_dir is not None:
        return model_dir
    from gpu_worker.tiny_model import build_tiny_model

    target = Path(tempfile.mkdtemp(prefix="refact-bench-")) / "tiny"
    build_tiny_model(target)
    return str(target)


def peak_mb(device) -> float:  # noqa: ANN001
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def ours(model_dir: str, args: argparse.Namespace) -> dict[str, float]:
    import torch

    from gpu_worker import finetune_core as core
    from hosting.catalogue import QWEN_FIM

    torch.manual_seed(0)
    device = core.pick_device([0] if args.gpu else [])
    model, tokenizer = core.load_base(model_dir, device)
    model = core.apply_lora(model, core.lora_settings(LORA, target_modules=TARGET_MODULES, keep_smaller=False))
    optimizer = core.make_optimizer(model, lr=1e-3, weight_decay=0.0)
    micro = core.micro_batch_size(args.batch, limit=args.batch)
    batches = core.micro_batches(corpus(args.files), tokenizer, QWEN_FIM, ctx=args.ctx, micro=micro)
    accumulation = args.batch // micro
    tokens = real = 0
    started = 0.0
    for step in range(WARMUP_STEPS + args.steps):
        if step == WARMUP_STEPS:
            started, tokens, real = time.perf_counter(), 0, 0
        step_batches = [next(batches) for _ in range(accumulation)]
        core.train_step(model, optimizer, step_batches, device=device, lr=1e-3)
        tokens += sum(batch.numel() for batch in step_batches)
        real += sum(batch.numel() for batch in step_batches)  # packed: every token is real
    seconds = time.perf_counter() - started
    return {"tokens_per_s": real / seconds, "non_padding": real / tokens, "peak_mb": peak_mb(device)}


def plain_setup(model_dir: str, args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """Device, tokenizer, peft model and AdamW as a plain script sets them up (no helpers of ours)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    device = torch.device("cuda", 0) if args.gpu else torch.device("cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
    config = LoraConfig(
        r=LORA["lora_r"], lora_alpha=LORA["lora_alpha"], lora_dropout=0.0, target_modules=list(TARGET_MODULES)
    )
    model = get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.95))
    return device, tokenizer, model, optimizer


def reference(model_dir: str, args: argparse.Namespace) -> dict[str, float]:
    """The loop most people write: peft, one padded sample per row, AdamW. No helpers of ours."""
    import random

    import torch

    from gpu_worker.finetune_core import fim_sample, split_pieces
    from hosting.catalogue import QWEN_FIM

    device, tokenizer, model, optimizer = plain_setup(model_dir, args)
    rng = random.Random(0)  # noqa: S311  (reproducible data, not secrets)
    # The same FIM samples as ours (the same pieces and spans), one per row.
    pieces = [piece for text in corpus(args.files) for piece in split_pieces(text, args.ctx * 3)]
    rng.shuffle(pieces)
    samples = [fim_sample(piece, QWEN_FIM, rng) for piece in pieces]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tokens = real = 0
    started = 0.0
    model.train()
    for step in range(WARMUP_STEPS + args.steps):
        if step == WARMUP_STEPS:
            started, tokens, real = time.perf_counter(), 0, 0
        chosen = [samples[(step * args.batch + row) % len(samples)] for row in range(args.batch)]
        encoded = tokenizer(chosen, add_special_tokens=False, truncation=True, max_length=args.ctx)["input_ids"]
        input_ids = torch.full((args.batch, args.ctx), pad, dtype=torch.long)
        mask = torch.zeros((args.batch, args.ctx), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        labels = input_ids.masked_fill(mask == 0, -100)
        input_ids, mask, labels = input_ids.to(device), mask.to(device), labels.to(device)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += input_ids.numel()
        real += int(mask.sum())
    seconds = time.perf_counter() - started
    return {"tokens_per_s": real / seconds, "non_padding": real / tokens, "peak_mb": peak_mb(device)}


def reference_packed(model_dir: str, args: argparse.Namespace) -> dict[str, float]:
    """A plain hand-written loop on exactly our packed batches: what our loop costs beyond the math."""
    from gpu_worker.finetune_core import training_blocks
    from hosting.catalogue import QWEN_FIM

    device, tokenizer, model, optimizer = plain_setup(model_dir, args)
    blocks = training_blocks(corpus(args.files), tokenizer, QWEN_FIM, ctx=args.ctx, seed=0)
    tokens = 0
    started = 0.0
    model.train()
    for step in range(WARMUP_STEPS + args.steps):
        if step == WARMUP_STEPS:
            started, tokens = time.perf_counter(), 0
        rows = [(step * args.batch + row) % len(blocks) for row in range(args.batch)]
        batch = blocks[rows].to(device)
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += batch.numel()
    seconds = time.perf_counter() - started
    return {"tokens_per_s": tokens / seconds, "non_padding": 1.0, "peak_mb": peak_mb(device)}


LOOPS = {"ours": ours, "reference": reference, "reference_packed": reference_packed}


def child(name: str, model_dir: str, args: argparse.Namespace, results) -> None:  # noqa: ANN001
    import torch

    torch.set_num_threads(args.threads)
    results.put(LOOPS[name](model_dir, args))


def in_fresh_process(name: str, model_dir: str, args: argparse.Namespace) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=child, args=(name, model_dir, args, results))
    process.start()
    result = results.get(timeout=1800)
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="measured optimizer steps (after 2 warm-up steps)")
    parser.add_argument("--ctx", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--files", type=int, default=60, help="standard-library modules in the corpus")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of both loops")
    parser.add_argument("--model-dir", help="weights to train (default: the tiny model, built here)")
    parser.add_argument("--gpu", action="store_true", help="train on cuda:0")
    args = parser.parse_args()

    model_dir = model_dir_or_tiny(args.model_dir)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in LOOPS}
    for round_index in range(args.rounds):
        for name in list(LOOPS) if round_index % 2 == 0 else list(LOOPS)[::-1]:
            runs[name].append(in_fresh_process(name, model_dir, args))

    def median(name: str, field: str) -> float:
        return statistics.median(run[field] for run in runs[name])

    ratio = median("ours", "tokens_per_s") / median("reference", "tokens_per_s")
    packed_ratio = median("ours", "tokens_per_s") / median("reference_packed", "tokens_per_s")
    result = {
        "steps": args.steps,
        "batch": args.batch,
        "ctx": args.ctx,
        "ours_tokens_per_s": round(median("ours", "tokens_per_s"), 1),
        "reference_tokens_per_s": round(median("reference", "tokens_per_s"), 1),
        "ratio": round(ratio, 3),
        "reference_packed_tokens_per_s": round(median("reference_packed", "tokens_per_s"), 1),
        "ratio_same_packed_batches": round(packed_ratio, 3),
        "ours_non_padding": round(median("ours", "non_padding"), 3),
        "reference_non_padding": round(median("reference", "non_padding"), 3),
        "ours_peak_mb": round(median("ours", "peak_mb"), 1),
        "reference_peak_mb": round(median("reference", "peak_mb"), 1),
        "reference_packed_peak_mb": round(median("reference_packed", "peak_mb"), 1),
    }
    print(json.dumps(result, indent=2))  # noqa: T201
    print(  # noqa: T201
        f"real tokens/s ours/reference {ratio:.3f}x (target >= 1.0: {'ok' if ratio >= 1.0 else 'MISSED'}); "
        f"non-padding tokens ours {result['ours_non_padding']:.3f} (target >= 0.95: "
        f"{'ok' if result['ours_non_padding'] >= 0.95 else 'MISSED'}), "
        f"reference {result['reference_non_padding']:.3f}; "
        f"on the same packed batches ours/plain loop {packed_ratio:.3f}x"
    )


if __name__ == "__main__":
    main()
