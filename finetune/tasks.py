from __future__ import annotations

import dramatiq

WEEK_MS = 7 * 24 * 3600 * 1000


@dramatiq.actor(queue_name="finetune", max_retries=3, time_limit=WEEK_MS)
def finetune_run_execute(run_id: int) -> None:
    from gpu_worker.finetune_pipeline import finetune_run_execute as execute  # torch: worker side only

    execute(run_id)
