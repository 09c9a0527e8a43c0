"""The real server process (daphne) on a free port, driven over HTTP."""

from __future__ import annotations

import re
import signal

import httpx
import pytest

from accounts.models import User
from hosting.models import WorkerNode
from tests.support.server import running_server, running_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(http: httpx.Client, base: str, username: str, password: str) -> httpx.Response:
    csrf = http.get("/login/").cookies["csrftoken"]
    return http.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": base},
    )


def test_the_server_starts_bootstraps_the_admin_and_serves_a_login():
    with running_server(ENTERPRISE_ADMIN_TOKEN="live-token-123", REFACT_INPROCESS_WORKER="true") as server:
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/").status_code == 302
            assert log_in(http, server.url, "admin", "wrong-password").status_code == 200
            response = log_in(http, server.url, "admin", "live-token-123")
            assert response.status_code == 302 and response.headers["location"] == "/"
            home = http.get("/")
            assert home.status_code == 200 and "Model Hosting" in home.text
            css = http.get("/static/css/app.css")
            assert css.status_code == 200 and "text/css" in css.headers["content-type"]
            wait_until(lambda: http.get("/healthz").status_code == 200, timeout=30, message="a healthy server")
            health = http.get("/healthz").json()
            assert health["checks"]["worker"]["nodes"][0]["name"]
            csrf = http.cookies["csrftoken"]
            assert http.post("/logout/", headers={"X-CSRFToken": csrf, "Referer": server.url}).status_code == 302
            assert http.get("/").status_code == 302


def test_without_a_token_the_generated_password_is_printed_once():
    with running_server(ENTERPRISE_ADMIN_TOKEN=None) as server:
        wait_until(lambda: "Admin account created" in server.log(), timeout=30, message="the admin password")
        password = re.search(r"Admin account created: admin / (\S+)", server.log()).group(1)
        assert password not in User.objects.get(username="admin").password
        with httpx.Client(base_url=server.url) as http:
            assert log_in(http, server.url, "admin", password).status_code == 302
    with running_server(ENTERPRISE_ADMIN_TOKEN=None) as again:
        wait_until(
            lambda: "started" in again.log() or "Refact server" in again.log(), timeout=30, message="the second start"
        )
        assert "Admin account created" not in again.log()


def test_a_standalone_worker_registers_and_unregisters():
    with running_worker(REFACT_WORKER_NAME="gpu-node-a") as worker:
        wait_until(
            lambda: WorkerNode.objects.filter(name="gpu-node-a").exists(), timeout=60, message="the worker's heartbeat"
        )
        assert worker.stop(signal.SIGTERM) == 0
    assert not WorkerNode.objects.filter(name="gpu-node-a").exists()
