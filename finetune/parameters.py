"""The Advanced settings of a fine-tune: defaults and allowed ranges (DESIGN.md), parsed strictly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from refact_site.exceptions import ApplicationError


@dataclass(frozen=True)
class Parameter:
    name: str
    label: str
    kind: type  # int, float or bool
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    help: str = ""

    @property
    def is_bool(self) -> bool:
        return self.kind is bool

    @property
    def allowed(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(str(choice) for choice in self.choices)
        return f"from {self.minimum:g} to {self.maximum:g}"

    def parse(self, value: Any) -> Any:
        """The value as its type, or an ApplicationError naming the field and its allowed range."""
        error = ApplicationError(f"{self.name}: {value} is not allowed; use {self.allowed}", field=self.name)
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "on", "yes"):
                return True
            if text in ("0", "false", "off", "no"):
                return False
            raise error
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            if self.kind is int:
                if number != int(number):
                    raise ValueError
                number = int(number)
        except (TypeError, ValueError):
            raise error from None
        if self.choices and number not in self.choices:
            raise error
        if self.minimum is not None and number < self.minimum:
            raise error
        if self.maximum is not None and number > self.maximum:
            raise error
        return number


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("lora_r", "LoRA rank", int, 16, choices=(4, 8, 16, 32, 64), help="Adapter capacity."),
    Parameter("lora_alpha", "LoRA alpha", float, 32, 4, 128, help="Adapter scaling."),
    Parameter("lora_dropout", "LoRA dropout", float, 0.01, 0, 0.5),
    Parameter("lora_init_scale", "LoRA init scale", float, 0.01, 0.0001, 0.1, help="Std of the adapters' initial A."),
    Parameter("lr", "Learning rate", float, 3e-4, 1e-5, 3e-3),
    Parameter("batch_size", "Batch size", int, 128, 4, 1024, help="Samples per optimizer step."),
    Parameter("warmup_num_steps", "Warmup steps", int, 20, 1, 100),
    Parameter("weight_decay", "Weight decay", float, 0.1, 0, 1),
    Parameter("train_steps", "Train steps", int, 0, 0, 5000, help="0 = automatic."),
    Parameter("lr_decay_steps", "LR decay steps", int, 0, 0, 5000, help="0 = same as train steps."),
    Parameter("low_gpu_mem_mode", "Low GPU memory mode", bool, True, help="Gradient checkpointing on GPU."),
    Parameter("trainable_embeddings", "Trainable embeddings", bool, False, help="Also train embeddings and head."),
    Parameter(
        "filter_loss_threshold",
        "Filter loss threshold",
        float,
        3.0,
        0,
        100,
        help="Stage 2 rejects files whose loss is above this.",
    ),
    Parameter("model_ctx_size", "Context size", int, 0, 0, 32768, help="0 = the model's default."),
)
PARAMETERS_BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}


def parameters_defaults() -> dict[str, Any]:
    return {parameter.name: parameter.default for parameter in PARAMETERS}


def parameters_parse(values: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by `values`; unknown names and out-of-range values are refused by name."""
    result = parameters_defaults()
    for name, value in values.items():
        parameter = PARAMETERS_BY_NAME.get(name)
        if parameter is None:
            known = ", ".join(PARAMETERS_BY_NAME)
            raise ApplicationError(f"{name}: unknown parameter; known parameters are {known}", field=name)
        result[name] = parameter.parse(value)
    if result["model_ctx_size"] and result["model_ctx_size"] < 64:
        raise ApplicationError("model_ctx_size: use 0 (the model's default) or at least 64", field="model_ctx_size")
    return result


def automatic_train_steps(*, packed_samples: int, batch_size: int) -> int:
    """DESIGN.md: epochs by packed-sample count, at least 50 steps, rounded up to a multiple of 50."""
    if packed_samples < 1000:
        epochs = 50
    elif packed_samples < 5000:
        epochs = 35
    elif packed_samples < 15000:
        epochs = 20
    elif packed_samples < 30000:
        epochs = 10
    else:
        epochs = 3
    steps = max(math.ceil(epochs * packed_samples / batch_size), 50)
    return math.ceil(steps / 50) * 50


def robust_step_seconds(durations: list[float], *, window: int = 30) -> float | None:
    """Mean of the recent step times without the slowest and fastest fifth (evaluations, warm-up)."""
    recent = sorted(durations[-window:])
    if not recent:
        return None
    trim = len(recent) // 5
    kept = recent[trim : len(recent) - trim] or recent
    return sum(kept) / len(kept)
