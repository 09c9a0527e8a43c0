from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoraRef:
    """A LoRA checkpoint published as `base:run:checkpoint`."""

    base_model: str
    run: str
    checkpoint: str
    path: Path  # the adapter directory (safetensors) on disk

    @property
    def published_name(self) -> str:
        return f"{self.base_model}:{self.run}:{self.checkpoint}"


def lora_resolve(*, base_model: str, run: str, checkpoint: str | None = None) -> LoraRef | None:
    """The checkpoint of a run of `base_model` (its best one when checkpoint is None), or None.

    Contract between finetune (issue 6) and accounts/hosting (issues 4 and 7); implemented by finetune.
    """
    return None
