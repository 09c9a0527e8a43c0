"""PostgreSQL restarted (killed, then started again) while plugin clients keep calling the server.

The server is never restarted: while the database is down every request answers within its timeout,
as usual where what it reads is still in memory (a verified API key, the served models), else 503
naming the database; once it is back every request answers as usual again.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.faults.conftest import PrivatePostgres
from tests.support.server import REPO, running_server, server_environment

pytestmark = [pytest.mark.services_only]
TOKEN = "fault-admin-token-1"
CLIENTS = 6
REQUEST_TIMEOUT = 10.0  # the plugins' own timeout; nothing may take longer
# Connect timeout (5 s in settings) plus the request itself: the slowest honest answer.
SLOWEST_ANSWER = 7.0
# (method, path, body, the answer when the database is up). The completion names an unknown model:
# its 404 comes after the key check and the routing.
CALLS = (
    ("GET", "/v1/models", None, 200),
    ("GET", "/refact-caps", None, 200),
    ("POST", "/v1/completions", {"model": "no-such-model", "prompt": "x", "max_tokens": 1}, 404),
    ("GET", "/v1/login", None, 200),
)


@dataclass
class Outcome:
    path: str
    started: float
    seconds: float
    status: int  # 0: no answer at all (timeout or connection error)
    unavailable: str = ""
    expected: int = 200

    @property
    def fine(self) -> bool:
        return self.status == self.expected


def api_key(postgres: PrivatePostgres) -> str:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "key_create", "admin", "--name", "fault"],
        cwd=REPO,
        env=server_environment(DATABASE_URL=postgres.url),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout.strip().splitlines()[-1]


def hammer(url: str, key: str, stop: threading.Event, outcomes: list[Outcome], index: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT, headers=headers) as http:
        turn = index
        while not stop.is_set():
            method, path, body, expected = CALLS[turn % len(CALLS)]
            turn += 1
            started = time.monotonic()
            try:
                response = http.request(method, path, json=body)
            except httpx.HTTPError:
                outcomes.append(Outcome(path, started, time.monotonic() - started, 0, expected=expected))
                continue
            unavailable = ""
            if response.status_code == 503:
                unavailable = response.json().get("unavailable", "")
            seconds = time.monotonic() - started
            outcomes.append(Outcome(path, started, seconds, response.status_code, unavailable, expected))
            time.sleep(0.02)


def test_postgres_restart_under_load(private_postgres: PrivatePostgres):
    with running_server(DATABASE_URL=private_postgres.url, ENTERPRISE_ADMIN_TOKEN=TOKEN) as server:
        key = api_key(private_postgres)
        stop = threading.Event()
        outcomes: list[Outcome] = []
        threads = [
            threading.Thread(target=hammer, args=(server.url, key, stop, outcomes, index), daemon=True)
            for index in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.5)
            stopping_at = time.monotonic()
            private_postgres.stop()
            down_at = time.monotonic()
            time.sleep(3)
            starting_at = time.monotonic()
            private_postgres.start()
            up_at = time.monotonic()
            time.sleep(4)
        finally:
            stop.set()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT + 5)
        # A restart nobody saw: the connections kept from before are broken, yet the first requests
        # after it are answered as usual.
        private_postgres.stop()
        private_postgres.start()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT, headers=headers) as http:
            unseen = [(path, http.request(method, path, json=body).status_code, ok) for method, path, body, ok in CALLS]
        assert server.popen.poll() is None, "the server died with its database"
    assert all(status == ok for _, status, ok in unseen), unseen

    before = [o for o in outcomes if o.started + o.seconds < stopping_at]
    during = [o for o in outcomes if down_at + 0.2 < o.started and o.started + o.seconds < starting_at]
    # Pages reconnect per request (CONN_MAX_AGE 0), the plugin app on the first failed query:
    # a second after the restart everything is fine.
    after = [o for o in outcomes if o.started > up_at + 1]
    slowest = max(outcomes, key=lambda o: o.seconds)
    statuses = sorted({o.status for o in outcomes})
    summary = f"{len(outcomes)} requests, statuses {statuses}, slowest {slowest.seconds:.2f}s"
    assert before and during and after, summary
    assert all(o.fine for o in before), (
        summary,
        [(round(o.started - stopping_at, 2), o.path, o.seconds, o.status) for o in before if not o.fine],
    )
    assert slowest.seconds < SLOWEST_ANSWER, f"a request hung: {summary}"
    assert all(o.fine or (o.status == 503 and o.unavailable == "database") for o in during), (
        summary,
        sorted({(o.path, o.status, o.unavailable) for o in during}),
    )
    assert any(o.status == 503 for o in during), summary  # the models are read afresh every second
    assert all(o.fine for o in after), (summary, sorted({(o.path, o.status) for o in after if not o.fine}))
