"""The torch side of fine-tuning, free of Django: data, stage-2 losses, LoRA, schedule, evaluation.

The pipeline (finetune_pipeline.py) and the benchmarks call these functions, so the benchmark
measures exactly the loop the product runs.
"""

from __future__ import annotations

import errno
import math
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from hosting.catalogue import FimFormat

FIM_PROBABILITY = 0.9
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "c_proj")


def pick_device(gpus: list[int]) -> torch.device:
    if gpus and torch.cuda.is_available():
        return torch.device("cuda", gpus[0])
    return torch.device("cpu")


def training_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_base(weights: str | Path, device: torch.device, *, dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(weights)
    model = AutoModelForCausalLM.from_pretrained(weights, dtype=dtype or training_dtype(device))
    model.to(device)
    return model, tokenizer


# --- stage 2: mean loss of each file under the base model ---

# Tokens per stage-2 batch (CPU, GPU): a GPU gains from wide batches; on a CPU padded batches only
# slow attention down, so only small files share a batch there (benchmarks/filter.py: 16384 tokens
# ran at 0.68x one file at a time on 2 cores, 512 at 1.03x).
FILTER_BATCH_TOKENS = (512, 16384)


@torch.no_grad()
def file_losses(
    model: Any,
    tokenizer: Any,
    texts: list[str | None],
    *,
    ctx: int,
    device: torch.device,
    batch_tokens: int | None = None,
) -> list[float | None]:
    """Mean next-token loss of each text (its first `ctx` tokens), in batches of similar length.

    None where no loss can be computed (unreadable, fewer than two tokens, not finite).
    """
    if batch_tokens is None:
        batch_tokens = FILTER_BATCH_TOKENS[device.type == "cuda"]
    model.eval()
    encoded: list[list[int] | None] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:ctx] if text else []
        encoded.append(ids if len(ids) >= 2 else None)
    results: list[float | None] = [None] * len(texts)
    order = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    start = 0
    while start < len(order):
        # Sorted by length, so a batch's padding is small; the batch grows until the token budget.
        end = start + 1
        while end < len(order) and (end - start + 1) * len(encoded[order[end]]) <= batch_tokens:
            end += 1
        batch = order[start:end]
        width = len(encoded[batch[-1]])
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            ids = encoded[index]
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        targets = input_ids[:, 1:]
        token_loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        valid = mask[:, 1:].float()
        means = (token_loss * valid).sum(1) / valid.sum(1)
        for row, index in enumerate(batch):
            value = float(means[row])
            results[index] = value if math.isfinite(value) else None
        start = end
    return results


# --- training data: FIM samples packed to the context ---


def split_pieces(text: str, max_chars: int) -> list[str]:
    """Whole lines grouped into pieces of at most about max_chars, so a FIM sample fits the context."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        if current and size + len(line) > max_chars:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line[:max_chars])
        size += len(current[-1])
    if current:
        pieces.append("".join(current))
    return [piece for piece in pieces if piece.strip()]


def fim_sample(text: str, fim: FimFormat, rng: random.Random) -> str:
    """A random middle span moved to the end, in the model's FIM format (or plain text, 10% of the time)."""
    if rng.random() >= FIM_PROBABILITY or len(text) < 3:
        return text + fim.eot_token
    start = rng.randrange(0, len(text) - 1)
    end = rng.randrange(start + 1, min(len(text), start + max(2, len(text) // 3)) + 1)
    prefix, middle, suffix = text[:start], text[start:end], text[end:]
    return fim.prompt(prefix, suffix) + middle + fim.eot_token


def token_stream(texts: list[str], tokenizer: Any, fim: FimFormat, *, ctx: int, seed: int) -> list[int]:
    rng = random.Random(seed)  # noqa: S311  (reproducible data, not secrets)
    pieces = [piece for text in texts for piece in split_pieces(text, ctx * 3)]
    rng.shuffle(pieces)
    samples = [fim_sample(piece, fim, rng) for piece in pieces]
    stream: list[int] = []
    for ids in tokenizer(samples, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
    return stream


def pack(stream: list[int], ctx: int) -> torch.Tensor:
    """Consecutive blocks of exactly ctx tokens: no padding at all (a short tail wraps to the start)."""
    if not stream:
        return torch.empty((0, ctx), dtype=torch.long)
    count = max(1, len(stream) // ctx)
    needed = count * ctx
    if len(stream) < needed:
        stream = (stream * (needed // len(stream) + 1))[:needed]
    return torch.tensor(stream[:needed], dtype=torch.long).view(count, ctx)


def training_blocks(texts: list[str], tokenizer: Any, fim: FimFormat, *, ctx: int, seed: int) -> torch.Tensor:
    return pack(token_stream(texts, tokenizer, fim, ctx=ctx, seed=seed), ctx)


def micro_batches(
    texts: list[str], tokenizer: Any, fim: FimFormat, *, ctx: int, micro: int, skip_samples: int = 0, seed: int = 0
) -> Iterator[torch.Tensor]:
    """Endless micro-batches; every epoch draws fresh FIM spans. `skip_samples` resumes mid-stream."""
    epoch = 0
    skipped = 0
    while True:
        blocks = training_blocks(texts, tokenizer, fim, ctx=ctx, seed=seed * 1000 + epoch)
        order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for start in range(0, len(order) - micro + 1 if len(order) >= micro else 1, micro):
            batch = blocks[order[start : start + micro]]
            if skipped < skip_samples:
                skipped += len(batch)
                continue
            yield batch
        epoch += 1


def shard(count: int, rank: int, world: int) -> range:
    """Rank's contiguous part of `count` items: sizes differ by at most one, together they cover all."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def step_batches(
    texts: list[str], tokenizer: Any, fim: FimFormat, *, ctx: int, batch_size: int, skip_steps: int = 0, seed: int = 0
) -> Iterator[torch.Tensor]:
    """Endless optimizer-step batches of exactly batch_size blocks (epochs run into each other).

    Every data-parallel rank draws the same sequence and trains on its `shard` of each batch.
    """

    def blocks() -> Iterator[torch.Tensor]:
        epoch = 0
        while True:
            packed = training_blocks(texts, tokenizer, fim, ctx=ctx, seed=seed * 1000 + epoch)
            if not len(packed):
                raise ValueError("no training tokens in the training files")
            order = torch.randperm(len(packed), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
            yield from packed[order]
            epoch += 1

    stream = blocks()
    for _ in range(skip_steps * batch_size):
        next(stream)
    while True:
        yield torch.stack([next(stream) for _ in range(batch_size)])


# --- LoRA ---


@dataclass(frozen=True)
class LoraSettings:
    r: int
    alpha: float
    dropout: float
    init_scale: float
    target_modules: tuple[str, ...]
    train_embeddings: bool = False
    keep_smaller: bool = False


def lora_settings(parameters: dict[str, Any], *, target_modules: tuple[str, ...], keep_smaller: bool) -> LoraSettings:
    return LoraSettings(
        r=int(parameters["lora_r"]),
        alpha=float(parameters["lora_alpha"]),
        dropout=float(parameters["lora_dropout"]),
        init_scale=float(parameters["lora_init_scale"]),
        target_modules=target_modules,
        train_embeddings=bool(parameters["trainable_embeddings"]),
        keep_smaller=keep_smaller,
    )


def apply_lora(model: Any, settings: LoraSettings) -> Any:
    """Wrap the base model with peft LoRA; "Keep it smaller" adapts attention only, at rank <= 8."""
    from peft import LoraConfig, get_peft_model

    modules = settings.target_modules
    rank = settings.r
    if settings.keep_smaller:
        modules = tuple(m for m in modules if m in ATTENTION_MODULES) or modules
        rank = min(rank, 8)
    config = LoraConfig(
        r=rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(modules),
        modules_to_save=["embed_tokens", "lm_head"] if settings.train_embeddings else None,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    for name, parameter in model.named_parameters():
        # B starts at zero so step 0 is exactly the base model; A gets the configured small scale.
        if "lora_A" in name:
            with torch.no_grad():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * settings.init_scale)
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    return model


def make_optimizer(model: Any, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)


def lr_at(step: int, *, lr: float, warmup: int, decay_steps: int) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak at `decay_steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, decay_steps - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def micro_batch_size(batch_size: int, *, limit: int) -> int:
    """The largest divisor of batch_size not above limit: gradient accumulation makes up the rest."""
    for size in range(min(limit, batch_size), 0, -1):
        if batch_size % size == 0:
            return size
    return 1


def autocast(device: torch.device):  # noqa: ANN201
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=training_dtype(device))
    return torch.autocast("cpu", enabled=False)


def train_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    batches: list[torch.Tensor],
    *,
    device: torch.device,
    lr: float,
    scaler: Any = None,
) -> float:
    """One optimizer step over the micro-batches (gradient accumulation); returns the mean loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    total = 0.0
    for batch in batches:
        batch = batch.to(device, non_blocking=True)
        with autocast(device):
            loss = model(input_ids=batch, labels=batch).loss / len(batches)
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        total += float(loss.detach())
    optimizer_step(model, optimizer, scaler=scaler)
    return total


def optimizer_step(model: Any, optimizer: torch.optim.Optimizer, *, scaler: Any = None) -> None:
    """Clip the accumulated gradients, step (through the fp16 scaler if any) and clear them."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@torch.no_grad()
def blocks_loss(model: Any, blocks: torch.Tensor, *, device: torch.device, micro: int) -> float:
    model.eval()
    losses = []
    for start in range(0, len(blocks), micro):
        batch = blocks[start : start + micro].to(device)
        with autocast(device):
            losses.append(float(model(input_ids=batch, labels=batch).loss) * len(batch))
    return sum(losses) / max(1, len(blocks))


# --- evaluation: exact match of FIM completions of held-out lines ---


def held_out_lines(texts: list[str], *, count: int, seed: int) -> list[tuple[str, str, str]]:
    """(prefix, line, suffix) triples: non-trivial lines picked with a fixed seed."""
    candidates = []
    for text in texts:
        lines = text.splitlines(keepends=True)
        for index, line in enumerate(lines):
            if len(line.strip()) >= 4:
                candidates.append(("".join(lines[:index]), line, "".join(lines[index + 1 :])))
    rng = random.Random(seed)  # noqa: S311  (reproducible data, not secrets)
    return rng.sample(candidates, min(count, len(candidates)))


def _fim_prompt(tokenizer: Any, fim: FimFormat, case: tuple[str, str, str], *, ctx: int) -> tuple[list[int], int]:
    """The FIM prompt of one held-out line and its token budget (the line's length and a little slack)."""
    prefix, line, suffix = case
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"][-(ctx // 2) :]
    suffix_ids = tokenizer(suffix, add_special_tokens=False)["input_ids"][: ctx // 4]
    budget = len(tokenizer(line, add_special_tokens=False)["input_ids"]) + 4
    ids = (
        tokenizer(fim.prefix_token, add_special_tokens=False)["input_ids"]
        + prefix_ids
        + tokenizer(fim.suffix_token, add_special_tokens=False)["input_ids"]
        + suffix_ids
        + tokenizer(fim.middle_token, add_special_tokens=False)["input_ids"]
    )
    return ids[-(ctx - budget) :], budget


@torch.no_grad()
def fim_first_lines(
    model: Any,
    tokenizer: Any,
    fim: FimFormat,
    cases: list[tuple[str, str, str]],
    *,
    ctx: int,
    device: torch.device,
    batch: int = 8,
) -> list[str]:
    """The first line the model writes (greedy) in the hole of each case.

    Prompts are generated BATCH at a time, left-padded: one by one, 24 short generations took a minute on a
    busy CPU.
    """
    model.eval()
    eot = tokenizer.convert_tokens_to_ids(fim.eot_token)
    lines: list[str] = []
    for start in range(0, len(cases), batch):
        prompts = [_fim_prompt(tokenizer, fim, case, ctx=ctx) for case in cases[start : start + batch]]
        longest = max(len(ids) for ids, _ in prompts)
        input_ids = torch.full((len(prompts), longest), eot, dtype=torch.long)
        mask = torch.zeros((len(prompts), longest), dtype=torch.long)
        for row, (ids, _) in enumerate(prompts):
            input_ids[row, longest - len(ids) :] = torch.tensor(ids)
            mask[row, longest - len(ids) :] = 1
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max(budget for _, budget in prompts),
            do_sample=False,
            eos_token_id=eot,
            pad_token_id=eot,
        )
        for row, (_, budget) in enumerate(prompts):
            # each row reads only its own budget, as if it had been generated alone
            completion = tokenizer.decode(output[row, longest : longest + budget], skip_special_tokens=True)
            lines.append(completion.lstrip("\n").split("\n", 1)[0].strip())
    return lines


def exact_match_rate(
    model: Any, tokenizer: Any, fim: FimFormat, cases: list[tuple[str, str, str]], *, ctx: int, device: torch.device
) -> float:
    """The share of held-out lines the model completes exactly."""
    if not cases:
        return 0.0
    written = fim_first_lines(model, tokenizer, fim, cases, ctx=ctx, device=device)
    return sum(line == case[1].strip() for line, case in zip(written, cases, strict=True)) / len(cases)


# --- checkpoints ---

# Disk full, quota exceeded, file size limit: all mean "no room for this checkpoint".
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class NoSpaceForCheckpoint(RuntimeError):
    pass


def checkpoint_save(
    directory: Path, model: Any, optimizer: torch.optim.Optimizer, *, step: int, test_loss: float, extra: dict
) -> str:
    """The adapter weights as checkpoints/<name>, and the optimizer state to resume from as resume.pt.

    Written beside, then renamed: a full disk or a kill leaves either the whole checkpoint or none, and
    never touches the earlier ones. Single-process and data-parallel runs write the same files, so either
    kind of run resumes the other's.
    """
    name = f"iter{step:04d}-testloss{test_loss:.3f}"
    path = directory / "checkpoints" / name
    staging = path.with_name(f".{name}.tmp")
    resume = directory / "resume.pt"
    temporary = resume.with_suffix(".tmp")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        # The optimizer state lives next to the run, not in every checkpoint: only the last one resumes.
        torch.save({"step": step, "checkpoint": name, "optimizer": optimizer.state_dict(), **extra}, temporary)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(staging, path)
        os.replace(temporary, resume)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        temporary.unlink(missing_ok=True)
        if error.errno in NO_SPACE_ERRNOS:
            raise NoSpaceForCheckpoint(
                f"no space left on the disk of the data directory while saving checkpoint {name} "
                f"({os.strerror(error.errno)}); earlier checkpoints are intact. Free some space and "
                "start a new run."
            ) from error
        raise
    return name


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except Exception:
        return 0.0
