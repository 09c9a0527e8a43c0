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


@pytest.mark.django_db
def test_a_restarted_worker_releases_only_the_jobs_of_its_previous_life():
    from refact_site.jobs import release_own_jobs

    started_at = timezone.now()
    left = DemoJob.objects.create(status="running", worker="w:1", heartbeat_at=started_at - timedelta(seconds=2))
    claimed_since = DemoJob.objects.create(status="running", worker="w:1", heartbeat_at=started_at)
    other = DemoJob.objects.create(status="running", worker="w:2", heartbeat_at=started_at - timedelta(seconds=2))
    assert release_own_jobs(worker="w:1", started_at=started_at) == 1
    claimable = set(DemoJob.objects.filter(DemoJob.claimable()).values_list("pk", flat=True))
    assert left.pk in claimable and claimed_since.pk not in claimable and other.pk not in claimable


@pytest.mark.django_db
def test_the_periodic_sweep_wakes_orphans_but_not_queued_jobs(monkeypatch):
    from tests.testapp import tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.demo_job, "send", sent.append)
    queued = DemoJob.objects.create()
    orphan = DemoJob.objects.create(status="running", worker="dead:1", heartbeat_at=timezone.now() - timedelta(hours=1))
    assert requeue_unfinished(orphans_only=True) == 1 and sent == [orphan.pk]
    assert requeue_unfinished() == 2 and sorted(sent[1:]) == sorted([queued.pk, orphan.pk])


@pytest.mark.django_db(transaction=True)
def test_keepalive_beats_while_a_long_step_runs(settings):
    import time

    from refact_site.jobs import keepalive

    settings.REFACT_WORKER_STALE_SECONDS = 5  # a beat every 1.25 s
    job = DemoJob.objects.create()
    DemoJob.claim(job.pk, to_state="running", worker="w:1")
    job.refresh_from_db()
    first = job.heartbeat_at
    with keepalive(job):
        time.sleep(1.6)  # one long step with no beat of its own
    job.refresh_from_db()
    assert job.heartbeat_at > first
