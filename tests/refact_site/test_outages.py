"""A configured PostgreSQL or Redis goes away: the server answers 503 naming it, then recovers alone.

The outage is made by a TCP proxy between the server and the real service, so the shared
service itself keeps running for everyone else.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.proxy import TcpProxy
from tests.support.server import database_url, running_server, wait_until

pytestmark = [pytest.mark.services_only, pytest.mark.django_db(transaction=True)]
TOKEN = "outage-token-123"


def healthz(http: httpx.Client) -> tuple[int, list[str]]:
    response = http.get("/healthz")
    return response.status_code, response.json()["failing"]


def try_log_in(http: httpx.Client, base: str) -> httpx.Response:
    csrf = http.get("/login/").cookies["csrftoken"]
    return http.post(
        "/login/", data={"username": "admin", "password": TOKEN, "csrfmiddlewaretoken": csrf}, headers={"Referer": base}
    )


def log_in(http: httpx.Client, base: str) -> None:
    response = try_log_in(http, base)
    assert response.status_code == 302, response.text[-3000:]


def test_postgres_down_at_start_then_lost_then_back():
    proxy = TcpProxy(("127.0.0.1", 5432))  # not started: the database is down when the server starts
    url = database_url().replace(":5432/", f":{proxy.port}/")
    with running_server(DATABASE_URL=url, ENTERPRISE_ADMIN_TOKEN=TOKEN, REFACT_INPROCESS_WORKER="true") as server:
        with httpx.Client(base_url=server.url, timeout=15) as http:
            status, failing = healthz(http)
            assert status == 503 and "database" in failing
            page = http.get("/login/", headers={"Cookie": "sessionid=abc"})
            assert page.status_code in (200, 503)  # the login form itself needs no database

            proxy.start()
            wait_until(lambda: healthz(http)[0] == 200, timeout=60, message="recovery after the database came up")
            # The admin is bootstrapped once the database appears: by a thread that retries with backoff,
            # so it may come a few seconds after /healthz is green.
            wait_until(
                lambda: try_log_in(http, server.url).status_code == 302,
                timeout=40,
                interval=1.0,
                message="the admin to be bootstrapped after the database came up",
            )
            assert http.get("/").status_code == 200

            proxy.stop()
            status, failing = healthz(http)
            assert status == 503 and "database" in failing
            page = http.get("/")
            assert page.status_code == 503
            assert "database is unavailable" in page.text and page.headers["Retry-After"]
            api = http.get("/api/schema/")
            assert api.status_code == 503 and api.json()["unavailable"] == "database"

            proxy.start()
            wait_until(lambda: http.get("/").status_code == 200, timeout=30, message="pages to recover")
            assert healthz(http)[0] == 200 or healthz(http)[1] == ["worker"]
    proxy.stop()


def test_redis_lost_then_back():
    proxy = TcpProxy(("127.0.0.1", 6379)).start()
    redis_url = f"redis://127.0.0.1:{proxy.port}/0"
    with running_server(REDIS_URL=redis_url, ENTERPRISE_ADMIN_TOKEN=TOKEN, REFACT_INPROCESS_WORKER="true") as server:
        with httpx.Client(base_url=server.url, timeout=15) as http:
            wait_until(lambda: healthz(http)[0] == 200, timeout=60, message="a healthy server")
            proxy.stop()
            status, failing = healthz(http)
            assert status == 503 and failing == ["broker"]
            log_in(http, server.url)  # sessions live in the database: logging in still works
            assert http.get("/").status_code == 200
            proxy.start()
            wait_until(lambda: healthz(http)[0] == 200, timeout=30, message="recovery after Redis came back")
    proxy.stop()
