"""The worker process is killed with SIGKILL in the middle of a scan: the work resumes on the next
worker (or, after too many deaths, ends failed saying so), and nothing is stored twice."""

from __future__ import annotations

import io
import signal
import tarfile
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from projects import services
from projects.models import Scan, ScannedFile
from projects.scanning import scan_run
from tests.support.server import running_worker, wait_until

pytestmark = [pytest.mark.services_only, pytest.mark.django_db(transaction=True)]

FILES = 9000  # about as many as the Redis fault needs to still be scanning when Redis goes
KILL_FILES = 8000
WORKER = {
    "REFACT_WORKER_NAME": "fault-scan-worker",
    "REFACT_SCAN_PROCESSES": "1",  # one process: slow enough to be caught mid-way on any machine
    "REFACT_SUPERVISOR": "false",
    "REFACT_WORKER_STALE_SECONDS": "5",
}


def corpus_tar(count: int) -> bytes:
    """COUNT small Python modules (every tenth an exact copy of another, so duplicates are detected)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for index in range(count):
            body = index - index % 10 if index % 10 == 9 else index
            data = f"def function_{body}(value):\n    return value * {body} + {body % 7}\n".encode()
            member = tarfile.TarInfo(f"pkg{index // 500}/module_{index}.py")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def scanned_project(name: str, *, files: int = FILES) -> Scan:
    project = services.project_create(name=name)
    services.source_add_upload(project=project, file_name="corpus.tar", stream=io.BytesIO(corpus_tar(files)))
    return services.project_scan_start(project=project)


def test_scan_resumes_after_the_worker_is_killed_and_stores_each_file_once(broker):
    scan = scanned_project("killed-scan", files=KILL_FILES)
    with running_worker(**WORKER) as first:

        def mid_scan() -> bool:
            scan.refresh_from_db()
            return scan.status == "running" and scan.files_done >= 1000

        wait_until(mid_scan, timeout=90, interval=0.02, message="the scan to be half-way")
        first.stop(signal.SIGKILL)
    scan.refresh_from_db()
    assert scan.status == "running" and 0 < scan.files_done < KILL_FILES, (scan.status, scan.files_done)
    assert scan.files.count() < KILL_FILES

    # Another worker (another machine, or this one under a new name): the dead worker's message is gone
    # with it, so the job waits until its heartbeat is stale and the periodic sweep wakes a worker for it.
    # (A worker restarted under the same name takes it back at once: see the training faults.)
    with running_worker(**{**WORKER, "REFACT_WORKER_NAME": "fault-other-worker"}):
        wait_until(lambda: Scan.objects.get(pk=scan.pk).is_finished, timeout=90, message="the resumed scan")
    scan.refresh_from_db()
    assert scan.status == "completed", scan.error
    assert scan.worker == "fault-other-worker" and scan.attempts == 2
    assert scan.files_total == scan.files_done == KILL_FILES
    assert scan.files.count() == KILL_FILES
    positions = scan.files.values_list("position", flat=True)
    assert sorted(positions) == list(range(KILL_FILES))
    twice = scan.files.values("path").annotate(n=Count("id")).filter(n__gt=1)
    assert not twice.exists()
    assert scan.summary["rejected"]["Duplicates"] == KILL_FILES // 10
    assert ScannedFile.objects.filter(scan__project=scan.project).count() == KILL_FILES


def test_a_scan_whose_worker_keeps_dying_ends_failed_after_bounded_attempts(broker):
    scan = scanned_project("cursed-scan", files=10)
    # Three workers died on it already (each claim counts an attempt).
    Scan.objects.filter(pk=scan.pk).update(
        status="running", worker="dead:3", attempts=Scan.MAX_ATTEMPTS, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    scan_run(scan_id=scan.pk)
    scan.refresh_from_db()
    assert scan.status == "failed"
    assert scan.error == "the worker stopped 3 times while running this job (at most 3 attempts); giving up"
    assert not scan.files.exists()
    scan_run(scan_id=scan.pk)  # a late duplicate wake-up changes nothing
    assert Scan.objects.get(pk=scan.pk).attempts == Scan.MAX_ATTEMPTS + 1
