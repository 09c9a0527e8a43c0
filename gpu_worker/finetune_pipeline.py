"""The fine-tune actor's work: claim, check, stage-2 filter, split, LoRA training, evaluation.

Every step is resumable: the stage-2 results live on the run's file rows, and training restarts
from the last checkpoint with its optimizer state, so a killed worker costs at most one interval.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from django.conf import settings

from finetune.models import FilterLossCache, FinetuneFile, FinetuneRun
from finetune.parameters import automatic_train_steps, robust_step_seconds
from finetune.services import (
    MIN_FILES,
    run_checkpoint_record,
    run_directory,
    run_finish,
    run_log,
    run_metric_record,
    run_publish_status,
)
from hosting.catalogue import FINETUNE, ModelSpec
from hosting.selectors import model_get
from refact_site.exceptions import ApplicationError
from refact_site.jobs import keepalive
from refact_site.text import count_noun

logger = logging.getLogger(__name__)

TEST_FILES = 3
SPLIT_SEED = 42
EARLY_STOP_EVALUATIONS = 5
EVAL_LINES = 24
FILTER_BATCH_FILES = 32
CPU_MICRO_BATCH = 8
GPU_MICRO_BATCH = 8
LOW_MEMORY_MICRO_BATCH = 2
FRESH_STATE: dict[str, Any] = {"step": 0, "best_test_loss": math.inf, "stale_evaluations": 0, "tokens": 0}


class Cancelled(Exception):
    pass


class TakenOver(Exception):
    """Another worker claimed the run (this one was considered dead): stop quietly."""


def weights_location(spec: ModelSpec) -> str:
    """The data directory's copy first, then the Hugging Face cache (which honours HF_HUB_OFFLINE)."""
    for candidate in (settings.DATA_DIR / spec.weights, settings.DATA_DIR / "models" / spec.name):
        if (candidate / "config.json").exists():
            return str(candidate)
    return spec.weights


def finetune_run_execute(run_id: int) -> None:
    if not FinetuneRun.claim(run_id, to_state=FinetuneRun.FILTERING):
        return  # someone else has it, or it is finished: messages are wake-ups, duplicates are harmless
    run = FinetuneRun.objects.get(pk=run_id)
    try:
        if run.attempts_exhausted:
            reason = f"interrupted: the worker stopped {run.attempts - 1} times during this run"
            run_log(run=run, text=reason)
            run_finish(run=run, status=FinetuneRun.INTERRUPTED, error=reason)
            return
        if run.attempts > 1:
            run_log(run=run, text=f"worker {run.worker} takes the run over (attempt {run.attempts})")
        with keepalive(run):
            Pipeline(run).execute()
    except Cancelled:
        run_log(run=run, text=f"cancelled at step {run.steps_done}; checkpoints are kept")
        run_finish(run=run, status=FinetuneRun.CANCELLED)
    except TakenOver:
        logger.warning("run %s was taken over by another worker", run_id)
    except ApplicationError as error:
        run_log(run=run, text=f"failed: {error.message}")
        run_finish(run=run, status=FinetuneRun.FAILED, error=error.message)
    except Exception as error:
        logger.exception("fine-tune run %s failed", run_id)
        message = f"{type(error).__name__}: {error}"
        run_log(run=run, text="failed: " + message + "\n" + traceback.format_exc(limit=5))
        run_finish(run=run, status=FinetuneRun.FAILED, error=message)


class Pipeline:
    def __init__(self, run: FinetuneRun):
        self.run = run
        self.parameters = run.parameters
        self.directory = run_directory(run)
        self.directory.mkdir(parents=True, exist_ok=True)

    # --- control ---

    def log(self, text: str) -> None:
        run_log(run=self.run, text=text)

    def beat(self, **fields: Any) -> None:
        if not self.run.beat(**fields):
            raise TakenOver
        if FinetuneRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists():
            raise Cancelled
        run_publish_status(self.run)

    # --- 1. checks, before any heavy work ---

    def check(self) -> ModelSpec:
        spec = model_get(self.run.base_model)
        if spec is None:
            raise ApplicationError(f"model {self.run.base_model} is not in the catalogue", field="model")
        if not spec.supports(FINETUNE) or spec.fim is None:
            raise ApplicationError(f"model {spec.name} cannot be fine-tuned", field="model")
        if self.run.gpus:
            import torch

            present = torch.cuda.device_count()
            missing = [index for index in self.run.gpus if index >= present]
            if missing:
                raise ApplicationError(
                    f"GPU {', '.join(map(str, missing))} not present on worker {self.run.worker} "
                    f"({present} GPU(s) found)",
                    field="gpus",
                )
        elif not spec.cpu_capable:
            raise ApplicationError(f"{spec.name} is too large to fine-tune on the CPU", field="gpus")
        # Several GPUs train data-parallel; the CPU world size > 1 exists for tests and benchmarks.
        self.devices = (
            [f"cuda:{index}" for index in self.run.gpus]
            if self.run.gpus
            else ["cpu"] * settings.REFACT_FINETUNE_CPU_WORLD_SIZE
        )
        if len(self.devices) > int(self.parameters["batch_size"]):
            raise ApplicationError(
                f"batch_size: {self.parameters['batch_size']} is smaller than the {len(self.devices)} devices "
                "training in parallel; raise it or select fewer GPUs",
                field="batch_size",
            )
        count = self.run.files.count()
        if count < MIN_FILES:
            raise ApplicationError(f"too few files: {count}, at least {MIN_FILES} are needed", field="project")
        return spec

    def execute(self) -> None:
        import torch

        from gpu_worker import finetune_core as core

        spec = self.check()
        self.spec = spec
        self.device = core.pick_device(self.run.gpus)
        self.log(f"loading {spec.name} on {self.device}")
        self.model, self.tokenizer = core.load_base(weights_location(spec), self.device)
        self.ctx = int(self.parameters["model_ctx_size"]) or spec.n_ctx
        torch.manual_seed(0)
        self.filter()
        train_texts, test_texts = self.split()
        if len(self.devices) > 1:
            from gpu_worker.finetune_distributed import train_distributed

            # The ranks load their own copies: free this one (and its GPU memory) meanwhile.
            del self.model
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            train_distributed(self, self.devices, train_texts, test_texts)
            self.model, self.tokenizer = core.load_base(weights_location(spec), self.device)
        else:
            self.train(train_texts, test_texts)
        self.evaluate(test_texts)
        self.run.refresh_from_db()
        self.log(f"completed: best checkpoint {self.best_name()}")
        run_finish(run=self.run, status=FinetuneRun.COMPLETED)

    # --- 2. stage-2 filter ---

    def read(self, file: FinetuneFile) -> str | None:
        try:
            return Path(file.absolute_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def filter(self) -> None:
        from gpu_worker import finetune_core as core

        pending = list(self.run.files.filter(status=FinetuneFile.PENDING))
        if not pending:
            return  # done before this worker (resume)
        threshold = float(self.parameters["filter_loss_threshold"])
        total = self.run.files.count()
        done = total - len(pending)
        cached = {
            row.sha256: row.loss
            for row in FilterLossCache.objects.filter(model=self.spec.name, sha256__in=[f.sha256 for f in pending])
        }
        self.log(f"stage 2: {count_noun(len(pending), 'file')} ({len(cached)} cached), loss threshold {threshold:g}")
        started = time.monotonic()
        for start in range(0, len(pending), FILTER_BATCH_FILES):
            chunk = pending[start : start + FILTER_BATCH_FILES]
            todo = [file for file in chunk if file.sha256 not in cached]
            if todo:
                losses = core.file_losses(
                    self.model, self.tokenizer, [self.read(file) for file in todo], ctx=self.ctx, device=self.device
                )
                for file, loss in zip(todo, losses, strict=True):
                    cached[file.sha256] = loss
                    FilterLossCache.objects.update_or_create(
                        sha256=file.sha256, model=self.spec.name, defaults={"loss": loss}
                    )
            for file in chunk:
                loss = cached[file.sha256]
                file.loss = loss
                if loss is None:
                    file.status, file.reason = FinetuneFile.REJECTED, "Filter empty"
                elif loss > threshold:
                    file.status, file.reason = FinetuneFile.REJECTED, f"loss {loss:.3f}"
                else:
                    file.status, file.reason = FinetuneFile.ACCEPTED, ""
            FinetuneFile.objects.bulk_update(chunk, ["loss", "status", "reason"])
            done += len(chunk)
            elapsed = time.monotonic() - started
            rate = (start + len(chunk)) / elapsed if elapsed > 0 else 0
            self.beat(progress=100.0 * done / total, eta_seconds=(total - done) / rate if rate else None)
        accepted = self.run.files.filter(status=FinetuneFile.ACCEPTED).count()
        self.log(f"stage 2 done: {accepted} accepted, {total - accepted} rejected")

    # --- 3. train/test split ---

    def split(self) -> tuple[list[str], list[str]]:
        accepted = list(self.run.files.filter(status=FinetuneFile.ACCEPTED).order_by("path"))
        if len(accepted) < MIN_FILES:
            raise ApplicationError(
                f"too few files after stage 2: {len(accepted)} accepted, at least {MIN_FILES} needed "
                f"(raise filter_loss_threshold, now {self.parameters['filter_loss_threshold']:g})",
                field="filter_loss_threshold",
            )
        if not any(file.split for file in accepted):
            marked = [file for file in accepted if file.marked_test]
            if marked and len(marked) < len(accepted):
                test = marked
            else:
                rng = random.Random(SPLIT_SEED)  # noqa: S311  (a fixed, reproducible split)
                test = rng.sample(accepted, min(TEST_FILES, len(accepted) // 2))
            test_ids = {file.pk for file in test}
            for file in accepted:
                file.split = "test" if file.pk in test_ids else "train"
            FinetuneFile.objects.bulk_update(accepted, ["split"])
        train = [text for file in accepted if file.split == "train" and (text := self.read(file))]
        test = [text for file in accepted if file.split == "test" and (text := self.read(file))]
        if not train or not test:
            raise ApplicationError("no readable files left for training or testing", field="project")
        self.log(f"split: {len(train)} train files, {len(test)} test files")
        return train, test

    # --- 4, 5. training with checkpoints and early stop ---

    def plan(self, train_texts: list[str]) -> dict[str, int]:
        from gpu_worker import finetune_core as core

        batch_size = int(self.parameters["batch_size"])
        samples = len(core.training_blocks(train_texts, self.tokenizer, self.spec.fim, ctx=self.ctx, seed=0))
        automatic = automatic_train_steps(packed_samples=samples, batch_size=batch_size)
        steps = int(self.parameters["train_steps"]) or automatic
        limit = CPU_MICRO_BATCH
        if self.device.type == "cuda":
            limit = LOW_MEMORY_MICRO_BATCH if self.parameters["low_gpu_mem_mode"] else GPU_MICRO_BATCH
        return {
            "samples": samples,
            "steps": steps,
            "micro": core.micro_batch_size(batch_size, limit=limit),
            "batch_size": batch_size,
            "decay": int(self.parameters["lr_decay_steps"]) or steps,
            "eval_every": max(1, min(100, round(steps / 10))),
        }

    def prepare_model(self) -> None:
        from gpu_worker import finetune_core as core

        if self.device.type == "cuda" and self.parameters["low_gpu_mem_mode"]:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.enable_input_require_grads()
        lora = core.lora_settings(
            self.parameters, target_modules=self.spec.lora_target_modules, keep_smaller=self.run.keep_smaller
        )
        self.model = core.apply_lora(self.model, lora)

    def train(self, train_texts: list[str], test_texts: list[str]) -> None:
        import torch

        from gpu_worker import finetune_core as core

        plan = self.plan(train_texts)
        test_blocks = core.training_blocks(test_texts, self.tokenizer, self.spec.fim, ctx=self.ctx, seed=1)
        self.prepare_model()
        optimizer = core.make_optimizer(
            self.model, lr=float(self.parameters["lr"]), weight_decay=float(self.parameters["weight_decay"])
        )
        scaler = torch.amp.GradScaler("cuda") if core.training_dtype(self.device) == torch.float16 else None
        state = self.resume_state(optimizer)
        step = state["step"]
        best = state["best_test_loss"]
        stale_evaluations = state["stale_evaluations"]
        tokens = state["tokens"]
        total = plan["steps"]
        self.run.status = FinetuneRun.WORKING
        self.beat(status=FinetuneRun.WORKING, total_steps=total, steps_done=step, progress=100.0 * step / total)
        self.log(
            f"training: {plan['samples']} packed samples of {self.ctx} tokens, {total} steps, batch "
            f"{plan['batch_size']} ({plan['micro']} x {plan['batch_size'] // plan['micro']} accumulation), "
            f"test every {plan['eval_every']} steps" + (f", resumed at step {step}" if step else "")
        )
        if step == 0:
            base_loss = core.blocks_loss(self.model, test_blocks, device=self.device, micro=plan["micro"])
            run_metric_record(run=self.run, step=0, test_loss=base_loss, lr=0.0)
            self.save_json("base.json", {"test_loss": base_loss})
            best = math.inf
        batches = core.micro_batches(
            train_texts,
            self.tokenizer,
            self.spec.fim,
            ctx=self.ctx,
            micro=plan["micro"],
            skip_samples=step * plan["batch_size"],
        )
        accumulation = plan["batch_size"] // plan["micro"]
        durations: list[float] = []
        eval_seconds = 0.0
        while step < total:
            started = time.monotonic()
            lr = core.lr_at(
                step,
                lr=float(self.parameters["lr"]),
                warmup=int(self.parameters["warmup_num_steps"]),
                decay_steps=plan["decay"],
            )
            micro = [next(batches) for _ in range(accumulation)]
            loss = core.train_step(self.model, optimizer, micro, device=self.device, lr=lr, scaler=scaler)
            step += 1
            step_tokens = sum(batch.numel() for batch in micro)
            tokens += step_tokens
            elapsed = time.monotonic() - started
            durations.append(elapsed)
            test_loss = None
            if step % plan["eval_every"] == 0 or step == total:
                eval_started = time.monotonic()
                test_loss = core.blocks_loss(self.model, test_blocks, device=self.device, micro=plan["micro"])
                eval_seconds = time.monotonic() - eval_started
            run_metric_record(
                run=self.run,
                step=step,
                train_loss=loss,
                test_loss=test_loss,
                lr=lr,
                tokens=tokens,
                tokens_per_second=step_tokens / elapsed if elapsed else 0.0,
                memory_mb=core.peak_memory_mb(self.device),
            )
            if test_loss is not None:
                stale_evaluations = 0 if test_loss < best - 1e-4 else stale_evaluations + 1
                best = min(best, test_loss)
                self.checkpoint(
                    optimizer,
                    step=step,
                    train_loss=loss,
                    test_loss=test_loss,
                    extra={"best_test_loss": best, "stale_evaluations": stale_evaluations, "tokens": tokens},
                )
            per_step = robust_step_seconds(durations) or elapsed
            remaining = total - step
            eta = per_step * remaining + eval_seconds * math.ceil(remaining / plan["eval_every"])
            self.beat(steps_done=step, progress=100.0 * step / total, eta_seconds=eta)
            if (
                test_loss is not None
                and stale_evaluations >= EARLY_STOP_EVALUATIONS
                and step > int(self.parameters["warmup_num_steps"])
            ):
                self.log(f"early stop at step {step}: test loss has not improved for {stale_evaluations} evaluations")
                break

    def checkpoint(self, optimizer: Any, *, step: int, train_loss: float, test_loss: float, extra: dict) -> None:
        from gpu_worker import finetune_core as core

        try:
            name = core.checkpoint_save(
                self.directory, self.model, optimizer, step=step, test_loss=test_loss, extra=extra
            )
        except core.NoSpaceForCheckpoint as error:
            raise ApplicationError(str(error), field="storage") from error
        path = self.directory / "checkpoints" / name
        run_checkpoint_record(run=self.run, name=name, step=step, train_loss=train_loss, test_loss=test_loss, path=path)
        self.log(f"checkpoint {name} saved" + (" (best so far)" if name == self.best_name() else ""))

    def resume_point(self) -> dict[str, Any] | None:
        """The last checkpoint's saved state (None: start fresh), with the database trimmed back to it."""
        import torch

        # Half-written checkpoints of a killed worker never became checkpoints.
        for staging in self.directory.glob("checkpoints/.*.tmp"):
            shutil.rmtree(staging, ignore_errors=True)
        resume = self.directory / "resume.pt"
        if not resume.exists():
            self.run.metrics.all().delete()
            return None
        state = torch.load(resume, map_location="cpu", weights_only=False)
        # Points past the checkpoint were made by the killed worker and will be made again.
        self.run.metrics.filter(step__gt=state["step"]).delete()
        self.run.checkpoints.filter(step__gt=state["step"]).delete()
        for stray in (self.directory / "checkpoints").iterdir():
            if stray.name != state["checkpoint"] and not self.run.checkpoints.filter(name=stray.name).exists():
                shutil.rmtree(stray, ignore_errors=True)
        self.log(f"resuming from checkpoint {state['checkpoint']} (step {state['step']})")
        return state

    def resume_state(self, optimizer: Any) -> dict[str, Any]:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = self.resume_point()
        if state is None:
            return dict(FRESH_STATE)
        path = self.directory / "checkpoints" / state["checkpoint"]
        set_peft_model_state_dict(self.model, load_file(path / "adapter_model.safetensors"))
        optimizer.load_state_dict(state["optimizer"])
        return {key: state[key] for key in FRESH_STATE}

    def best_name(self) -> str | None:
        best = self.run.checkpoints.filter(is_best=True).first()
        return best.name if best else None

    def save_json(self, name: str, value: dict) -> None:
        (self.directory / name).write_text(json.dumps(value))

    # --- 6. evaluation report: base vs best checkpoint ---

    def evaluate(self, test_texts: list[str]) -> None:
        from peft import PeftModel, set_peft_model_state_dict
        from safetensors.torch import load_file

        from gpu_worker import finetune_core as core

        best = self.run.checkpoints.filter(is_best=True).first()
        if best is None:
            self.log("no checkpoint to evaluate")
            return
        self.beat()
        self.log(f"evaluating the base model and {best.name} on {len(test_texts)} test files")
        test_blocks = core.training_blocks(test_texts, self.tokenizer, self.spec.fim, ctx=self.ctx, seed=1)
        cases = core.held_out_lines(test_texts, count=EVAL_LINES, seed=SPLIT_SEED)
        model = self.model
        if not isinstance(model, PeftModel):
            self.prepare_model()
            model = self.model
        set_peft_model_state_dict(model, load_file(settings.DATA_DIR / best.path / "adapter_model.safetensors"))
        micro = 4
        with model.disable_adapter():
            base_loss = core.blocks_loss(model, test_blocks, device=self.device, micro=micro)
            base_match = core.exact_match_rate(
                model, self.tokenizer, self.spec.fim, cases, ctx=self.ctx, device=self.device
            )
        tuned_loss = core.blocks_loss(model, test_blocks, device=self.device, micro=micro)
        tuned_match = core.exact_match_rate(
            model, self.tokenizer, self.spec.fim, cases, ctx=self.ctx, device=self.device
        )
        report = {
            "checkpoint": best.name,
            "test_files": len(test_texts),
            "lines": len(cases),
            "base": {"test_loss": base_loss, "exact_match": base_match},
            "finetuned": {"test_loss": tuned_loss, "exact_match": tuned_match},
        }
        FinetuneRun.objects.filter(pk=self.run.pk).update(evaluation=report)
        self.run.evaluation = report
        self.log(
            f"evaluation: test loss {base_loss:.3f} -> {tuned_loss:.3f}, exact match "
            f"{base_match:.0%} -> {tuned_match:.0%} on {len(cases)} held-out lines"
        )
