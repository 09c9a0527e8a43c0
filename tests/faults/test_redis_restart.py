"""Redis (broker, channel layer, cache) killed and restarted without persistence during a scan.

The worker runs against a private Redis so that the shared one is never touched. The scan in progress
completes after the reconnect, and a scan whose wake-up message Redis forgot is re-sent and completes.
"""

from __future__ import annotations

import pytest

from projects.models import Scan
from tests.faults.conftest import PrivateRedis
from tests.faults.test_worker_kill import FILES, WORKER, scanned_project
from tests.support.server import running_worker, wait_until

pytestmark = [pytest.mark.services_only, pytest.mark.django_db(transaction=True)]


def test_scan_completes_after_redis_restarts(private_redis: PrivateRedis, broker):
    # The wake-ups of these rows go to the test's own broker, not the private Redis: the worker learns
    # of `running` from its start-up re-queue, and of `forgotten` only once it notices the restart.
    running = scanned_project("redis-running")
    env = {**WORKER, "REDIS_URL": private_redis.url, "REFACT_WORKER_NAME": "fault-redis-worker"}
    with running_worker(**env) as worker:

        def mid_scan() -> bool:
            running.refresh_from_db()
            return running.status == "running" and running.files_done >= 1000

        wait_until(mid_scan, timeout=90, interval=0.05, message="the scan to be half-way")
        forgotten = scanned_project("redis-forgotten")
        assert Scan.objects.get(pk=forgotten.pk).status == "queued"

        private_redis.restart(down_seconds=1)

        wait_until(
            lambda: Scan.objects.get(pk=running.pk).is_finished and Scan.objects.get(pk=forgotten.pk).is_finished,
            timeout=90,
            message="both scans to finish after the restart",
        )
        assert "the broker restarted: re-sending every unfinished job" in worker.log()
        assert worker.popen.poll() is None
    for scan in (running, forgotten):
        scan.refresh_from_db()
        assert scan.status == "completed", scan.error
        assert scan.files.count() == FILES and scan.attempts == 1
