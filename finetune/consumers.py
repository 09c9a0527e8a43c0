from __future__ import annotations

from typing import Any

from finetune.selectors import finetune_run_get, finetune_run_snapshot
from finetune.services import run_group
from refact_site.consumers import LiveConsumer
from refact_site.exceptions import NotFoundError


class FinetuneRunConsumer(LiveConsumer):
    """A run's metric points, log lines, checkpoints and status; only its team and admins may watch."""

    def group_for(self, user: Any, **url_kwargs: Any) -> str | None:
        try:
            run = finetune_run_get(user=user, run_id=url_kwargs["run_id"])
        except NotFoundError:
            return None
        return run_group(run.pk)

    def snapshot(self, user: Any, **url_kwargs: Any) -> dict[str, Any] | None:
        return finetune_run_snapshot(run=finetune_run_get(user=user, run_id=url_kwargs["run_id"]))
