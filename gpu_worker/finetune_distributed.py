"""Data-parallel LoRA training: one process per device, DistributedDataParallel over torch.distributed.

The Dramatiq actor's process (the parent) keeps every database write. Rank 0 sends it events through
a queue (metric points, checkpoints, log lines) and writes the checkpoint files; the parent relays a
cancel back through an event. The ranks agree on stopping with the same all-reduce that sums the
step's loss, so every rank leaves the loop at the same step and no collective is left waiting.
The ranks import no Django: they get plain data (texts, FIM format, plan) and write only files.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import queue
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from gpu_worker import finetune_core as core
from hosting.catalogue import FimFormat

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

    from gpu_worker.finetune_pipeline import Pipeline

BEAT_SECONDS = 10.0  # the parent's heartbeat while the ranks load or train a long step
STOP_GRACE_SECONDS = 300.0  # after a cancel, how long the ranks may take to finish their step


@dataclass(frozen=True)
class RankJob:
    """Everything a rank needs, picklable and free of Django."""

    weights: str
    devices: tuple[str, ...]  # one per rank: "cuda:3" (explicit indices) or "cpu"
    port: int
    parent_pid: int
    directory: str
    train_texts: list[str]
    test_texts: list[str]
    fim: FimFormat
    ctx: int
    lora: core.LoraSettings
    low_memory: bool
    steps: int
    batch_size: int
    micro: int
    eval_every: int
    decay: int
    lr: float
    weight_decay: float
    warmup: int
    early_stop_evaluations: int
    resume: dict[str, Any] | None  # step, checkpoint, best_test_loss, stale_evaluations, tokens
    cpu_threads: int


# --- the rank processes ---


def rank_main(rank: int, job: RankJob, events: Any, stop: Event) -> None:
    try:
        _train(rank, job, events, stop)
    except BaseException as error:
        events.put(("error", rank, f"{type(error).__name__}: {error}".splitlines()[0], traceback.format_exc(limit=8)))
        raise
    finally:
        if os.getppid() != job.parent_pid:
            events.cancel_join_thread()  # nobody reads the queue any more: do not wait to flush it
        if dist.is_initialized():
            dist.destroy_process_group()
    leave_without_teardown(events)


def leave_without_teardown(events: Any = None) -> None:
    """End a rank that has finished its work without the interpreter's exit-time teardown.

    In about one exit in fifteen on CPU, torch's distributed threads abort there, after the work
    is done ("terminate called without an active exception", SIGABRT). The parent then took the rank
    for failed and failed a run that had completed. What the rank sent is flushed first."""
    if events is not None:
        events.close()
        events.join_thread()  # returns at once where cancel_join_thread was called
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def ddp_step(
    ddp: DistributedDataParallel,
    optimizer: torch.optim.Optimizer,
    samples: torch.Tensor,
    *,
    global_count: int,
    micro: int,
    device: torch.device,
    lr: float,
    scaler: Any = None,
) -> float:
    """One optimizer step over this rank's samples; returns the sum of their mean losses.

    DDP averages gradients over the ranks, so each micro-batch's loss is weighted by its share of
    the global batch times the world size: the update equals one process accumulating the whole
    batch, even when the ranks' shares differ by a sample.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    ddp.train()
    world = dist.get_world_size()
    chunks = list(samples.split(micro))
    total = 0.0
    for index, chunk in enumerate(chunks):
        # Gradients are exchanged once per step, on the last micro-batch.
        sync = contextlib.nullcontext() if index == len(chunks) - 1 else ddp.no_sync()
        with sync:
            chunk = chunk.to(device, non_blocking=True)
            with core.autocast(device):
                loss = ddp(input_ids=chunk, labels=chunk).loss
            weighted = loss * (len(chunk) * world / global_count)
            (scaler.scale(weighted) if scaler is not None else weighted).backward()
        total += float(loss.detach()) * len(chunk)
    core.optimizer_step(ddp, optimizer, scaler=scaler)
    return total


def _train(rank: int, job: RankJob, events: Any, stop: Event) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    device = torch.device(job.devices[rank])
    world = len(job.devices)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(job.cpu_threads)  # the ranks share the cores instead of oversubscribing them
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        init_method=f"tcp://127.0.0.1:{job.port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(minutes=30),
        device_id=device if device.type == "cuda" else None,
    )
    leader = rank == 0

    torch.manual_seed(0)  # the same LoRA initialisation everywhere (DDP also broadcasts rank 0's)
    model, tokenizer = core.load_base(job.weights, device)
    if device.type == "cuda" and job.low_memory:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = core.apply_lora(model, job.lora)
    optimizer = core.make_optimizer(model, lr=job.lr, weight_decay=job.weight_decay)
    state = job.resume or {"step": 0, "best_test_loss": math.inf, "stale_evaluations": 0, "tokens": 0}
    if job.resume:
        checkpoint = Path(job.directory) / "checkpoints" / job.resume["checkpoint"]
        set_peft_model_state_dict(model, load_file(checkpoint / "adapter_model.safetensors"))
        saved = torch.load(Path(job.directory) / "resume.pt", map_location="cpu", weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    torch.manual_seed(1000 + rank)  # different dropout masks per rank
    scaler = torch.amp.GradScaler("cuda") if core.training_dtype(device) == torch.float16 else None

    test_blocks = core.training_blocks(job.test_texts, tokenizer, job.fim, ctx=job.ctx, seed=1)
    test_part = core.shard(len(test_blocks), rank, world)
    own_test = test_blocks[test_part.start : test_part.stop]

    def test_loss() -> float:
        local = core.blocks_loss(model, own_test, device=device, micro=job.micro) * len(own_test)
        summed = torch.tensor([local, float(len(own_test))], dtype=torch.float64, device=device)
        dist.all_reduce(summed)
        return float(summed[0] / summed[1])

    step = int(state["step"])
    best = float(state["best_test_loss"])
    stale = int(state["stale_evaluations"])
    tokens = int(state["tokens"])
    if step == 0:
        base_loss = test_loss()
        best = math.inf
        if leader:
            events.put(("base", base_loss))
    own = core.shard(job.batch_size, rank, world)
    batches = core.step_batches(
        job.train_texts, tokenizer, job.fim, ctx=job.ctx, batch_size=job.batch_size, skip_steps=step
    )
    while step < job.steps:
        started = time.monotonic()
        lr = core.lr_at(step, lr=job.lr, warmup=job.warmup, decay_steps=job.decay)
        batch = next(batches)
        samples = batch[own.start : own.stop]
        loss_sum = ddp_step(
            ddp, optimizer, samples, global_count=len(batch), micro=job.micro, device=device, lr=lr, scaler=scaler
        )
        # One collective: the loss, the tokens actually trained and whether any rank must stop
        # (a cancel, or the parent process gone).
        stopping = stop.is_set() or os.getppid() != job.parent_pid
        summed = torch.tensor([loss_sum, float(samples.numel()), float(stopping)], dtype=torch.float64, device=device)
        dist.all_reduce(summed)
        train_loss = float(summed[0]) / len(batch)
        step_tokens = int(summed[1])
        if summed[2] > 0:
            # Before this step leaves any trace: a cancelled run shows what its checkpoints and metrics
            # say, and ranks orphaned by a killed worker write nothing its successor could trip on.
            break
        step += 1
        tokens += step_tokens
        elapsed = time.monotonic() - started
        evaluation = None
        eval_seconds = 0.0
        if step % job.eval_every == 0 or step == job.steps:
            eval_started = time.monotonic()
            evaluation = test_loss()
            eval_seconds = time.monotonic() - eval_started
        if leader:
            events.put(
                (
                    "metric",
                    step,
                    {
                        "train_loss": train_loss,
                        "test_loss": evaluation,
                        "lr": lr,
                        "tokens": tokens,
                        "tokens_per_second": step_tokens / elapsed if elapsed else 0.0,
                        "memory_mb": core.peak_memory_mb(device),
                    },
                )
            )
        if evaluation is not None:
            stale = 0 if evaluation < best - 1e-4 else stale + 1
            best = min(best, evaluation)
            if leader:
                extra = {"best_test_loss": best, "stale_evaluations": stale, "tokens": tokens}
                name = core.checkpoint_save(
                    Path(job.directory), model, optimizer, step=step, test_loss=evaluation, extra=extra
                )
                events.put(("checkpoint", name, step, train_loss, evaluation))
        if leader:
            events.put(("step", step, elapsed, eval_seconds))
        if evaluation is not None and stale >= job.early_stop_evaluations and step > job.warmup:
            if leader:
                events.put(("log", f"early stop at step {step}: test loss has not improved for {stale} evaluations"))
            break
    if leader:
        events.put(("done", step))


# --- the parent: spawn, relay events to the database, stop ---


def train_distributed(pipeline: Pipeline, devices: list[str], train_texts: list[str], test_texts: list[str]) -> None:
    from finetune.models import FinetuneRun
    from finetune.parameters import robust_step_seconds
    from finetune.services import run_checkpoint_record, run_metric_record
    from gpu_worker.finetune_pipeline import EARLY_STOP_EVALUATIONS, Cancelled, weights_location
    from gpu_worker.supervisor import free_port

    plan = pipeline.plan(train_texts)
    parameters = pipeline.parameters
    resume = pipeline.resume_point()
    state = {key: value for key, value in resume.items() if key != "optimizer"} if resume else None
    step = int(state["step"]) if state else 0
    total = plan["steps"]
    world = len(devices)
    job = RankJob(
        weights=weights_location(pipeline.spec),
        devices=tuple(devices),
        port=free_port(),
        parent_pid=os.getpid(),
        directory=str(pipeline.directory),
        train_texts=train_texts,
        test_texts=test_texts,
        fim=pipeline.spec.fim,
        ctx=pipeline.ctx,
        lora=core.lora_settings(
            parameters, target_modules=pipeline.spec.lora_target_modules, keep_smaller=pipeline.run.keep_smaller
        ),
        low_memory=bool(parameters["low_gpu_mem_mode"]),
        steps=total,
        batch_size=plan["batch_size"],
        micro=plan["micro"],
        eval_every=plan["eval_every"],
        decay=plan["decay"],
        lr=float(parameters["lr"]),
        weight_decay=float(parameters["weight_decay"]),
        warmup=int(parameters["warmup_num_steps"]),
        early_stop_evaluations=EARLY_STOP_EVALUATIONS,
        resume=state,
        cpu_threads=max(1, (os.cpu_count() or 1) // world),
    )
    pipeline.run.status = FinetuneRun.WORKING
    pipeline.beat(status=FinetuneRun.WORKING, total_steps=total, steps_done=step, progress=100.0 * step / total)
    share = core.shard(plan["batch_size"], 0, world)
    pipeline.log(
        f"training data-parallel on {world} ranks ({', '.join(devices)}): {plan['samples']} packed samples of "
        f"{pipeline.ctx} tokens, {total} steps, batch {plan['batch_size']} (about {len(share)} per rank in "
        f"micro-batches of up to {plan['micro']}), test every {plan['eval_every']} steps"
        + (f", resumed at step {step}" if step else "")
    )

    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    events = context.Queue()
    stop = context.Event()
    ranks = [
        context.Process(target=rank_main, args=(rank, job, events, stop), name=f"finetune-rank{rank}", daemon=True)
        for rank in range(world)
    ]
    durations: list[float] = []
    last_eval_seconds = 0.0  # the ETA counts the evaluations still to come at the last one's cost
    cancelled = False
    errors: list[str] = []
    stop_deadline = math.inf
    last_beat = time.monotonic()

    def beat(**fields: Any) -> None:
        nonlocal cancelled, last_beat, stop_deadline
        last_beat = time.monotonic()
        if cancelled:  # keep the progress true while the ranks finish their step
            pipeline.run.beat(**fields)
            return
        try:
            pipeline.beat(**fields)
        except Cancelled:
            cancelled = True
            stop.set()
            stop_deadline = time.monotonic() + STOP_GRACE_SECONDS

    def handle(event: tuple) -> None:
        nonlocal last_eval_seconds
        kind = event[0]
        if kind == "base":
            run_metric_record(run=pipeline.run, step=0, test_loss=event[1], lr=0.0)
            pipeline.save_json("base.json", {"test_loss": event[1]})
        elif kind == "metric":
            run_metric_record(run=pipeline.run, step=event[1], **event[2])
        elif kind == "checkpoint":
            name, at, train_loss, test_loss = event[1:]
            path = pipeline.directory / "checkpoints" / name
            run_checkpoint_record(
                run=pipeline.run, name=name, step=at, train_loss=train_loss, test_loss=test_loss, path=path
            )
            pipeline.log(f"checkpoint {name} saved" + (" (best so far)" if name == pipeline.best_name() else ""))
        elif kind == "step":
            at, elapsed, eval_seconds = event[1:]
            last_eval_seconds = eval_seconds or last_eval_seconds
            durations.append(elapsed)
            per_step = robust_step_seconds(durations) or elapsed
            remaining = total - at
            eta = per_step * remaining + last_eval_seconds * math.ceil(remaining / plan["eval_every"])
            beat(steps_done=at, progress=100.0 * at / total, eta_seconds=eta)
        elif kind == "log":
            pipeline.log(event[1])
        elif kind == "error":
            errors.append(f"rank {event[1]}: {event[2]}")
            pipeline.log(f"rank {event[1]} failed:\n{event[3]}")

    try:
        for process in ranks:
            process.start()
        while True:
            try:
                handle(events.get(timeout=1.0))
                if errors:
                    break  # the other ranks would wait in a collective: stop them all
                continue
            except queue.Empty:
                pass
            if not any(process.is_alive() for process in ranks):
                break
            if any(process.exitcode not in (None, 0) for process in ranks) or time.monotonic() > stop_deadline:
                break
            if time.monotonic() - last_beat > BEAT_SECONDS:
                beat()
    finally:
        for process in ranks:
            if process.is_alive():
                process.terminate()
        for process in ranks:
            process.join(timeout=30)
    with contextlib.suppress(queue.Empty):
        while True:  # what the ranks sent just before they ended
            handle(events.get(timeout=0.2))
    failed = [f"rank {rank} exited with code {p.exitcode}" for rank, p in enumerate(ranks) if p.exitcode]
    if cancelled:
        raise Cancelled
    if errors or failed:
        detail = errors[0] if errors else "; ".join(failed)
        raise RuntimeError(f"data-parallel training failed: {detail}")
