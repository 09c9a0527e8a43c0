from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from refact_site.jobs import requeue_unfinished
from tests.support.server import wait_until
from tests.testapp.models import DemoJob


@pytest.mark.django_db(transaction=True)
def test_only_one_of_many_concurrent_claims_wins():
    job = DemoJob.objects.create()
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claim(name: str) -> None:
        barrier.wait()
        try:
            results.append(DemoJob.claim(job.pk, to_state="running", worker=name))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    job.refresh_from_db()
    assert job.status == "running" and job.attempts == 1


@pytest.mark.django_db
def test_a_running_job_with_a_fresh_heartbeat_cannot_be_claimed_but_a_stale_one_can():
    job = DemoJob.objects.create()
    assert DemoJob.claim(job.pk, to_state="running", worker="a")
    assert not DemoJob.claim(job.pk, to_state="running", worker="b")
    DemoJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert DemoJob.claim(job.pk, to_state="running", worker="b")
    job.refresh_from_db()
    assert job.worker == "b" and job.attempts == 2


@pytest.mark.django_db
def test_beat_reports_a_lost_job():
    job = DemoJob.objects.create()
    DemoJob.claim(job.pk, to_state="running", worker="a")
    job.refresh_from_db()
    assert job.beat(progress=10)
    DemoJob.objects.filter(pk=job.pk).update(worker="b")
    assert not job.beat(progress=20)


@pytest.mark.django_db
def test_finished_jobs_are_not_claimable():
    job = DemoJob.objects.create(status="done")
    assert not DemoJob.claim(job.pk, to_state="running")


def test_requeue_wakes_pending_and_orphaned_jobs_and_the_worker_finishes_them(worker):
    pending = DemoJob.objects.create()
    orphaned = DemoJob.objects.create(
        status="running", worker="dead:1", heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    alive = DemoJob.objects.create(status="running", worker="alive:1", heartbeat_at=timezone.now())
    finished = DemoJob.objects.create(status="done")

    assert requeue_unfinished() == 2
    wait_until(
        lambda: DemoJob.objects.filter(pk__in=[pending.pk, orphaned.pk], status="done").count() == 2,
        timeout=30,
        message="re-queued jobs to finish",
    )
    assert DemoJob.objects.get(pk=alive.pk).status == "running"
    assert DemoJob.objects.get(pk=finished.pk).runs == 0


def test_duplicate_messages_run_the_work_once(worker, broker):
    from tests.testapp.tasks import demo_job

    job = DemoJob.objects.create(sleep_seconds=0.5)
    for _ in range(3):
        demo_job.send(job.pk)
    wait_until(lambda: DemoJob.objects.get(pk=job.pk).status == "done", timeout=30, message="the job")
    broker.join(demo_job.queue_name, timeout=30_000)
    assert DemoJob.objects.get(pk=job.pk).runs == 1


def test_enqueue_waits_for_the_commit(worker):
    from django.db import transaction

    with transaction.atomic():
        job = DemoJob.objects.create()
        job.enqueue()
    wait_until(lambda: DemoJob.objects.get(pk=job.pk).status == "done", timeout=30, message="the job")
