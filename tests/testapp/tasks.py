from __future__ import annotations

import time

import dramatiq
from django.db.models import F
from django.utils import timezone


@dramatiq.actor(max_retries=0)
def demo_job(job_id: int) -> None:
    from tests.testapp.models import DemoJob

    if not DemoJob.claim(job_id, to_state="running"):
        return  # someone else has it, or it is finished: running twice is harmless
    job = DemoJob.objects.get(pk=job_id)
    time.sleep(job.sleep_seconds)
    DemoJob.objects.filter(pk=job_id).update(
        status="done", progress=100, finished_at=timezone.now(), runs=F("runs") + 1
    )
