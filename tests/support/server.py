"""Start the real server (`manage.py serve`, daphne) or worker as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the database the tests are using right now (the test database)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings["USER"] or "postgres"
    return f"postgres://{user}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


def server_environment(**overrides: str | None) -> dict[str, str]:
    """The environment of this test run, pointed at the test database; None removes a variable."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["DATABASE_URL"] = database_url()
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    port: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


def spawn(args: list[str], env: dict[str, str]) -> Process:
    log = Path(tempfile.mkstemp(prefix="refact-proc-", suffix=".log")[1])
    handle = log.open("wb")
    popen = subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT
    )
    return Process(popen=popen, log_path=log)


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@contextmanager
def running_server(*, startup_timeout: float = 60, **env_overrides: str | None) -> Iterator[Process]:
    """`manage.py serve` on a free port; yields once it answers HTTP."""
    port = free_port()
    process = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], server_environment(**env_overrides))
    process.port = port
    process.url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"server exited with {process.popen.returncode}:\n{process.log()}")
        try:
            httpx.get(f"{process.url}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return True

    try:
        wait_until(answers, timeout=startup_timeout, message=f"the server on port {port}")
        yield process
    finally:
        process.stop()
        sys.stdout.write(f"--- server log ({process.log_path}) ---\n{process.log()[-4000:]}\n")


@contextmanager
def running_worker(**env_overrides: str | None) -> Iterator[Process]:
    process = spawn(["run_worker", "--threads", "2"], server_environment(**env_overrides))
    try:
        yield process
    finally:
        process.stop()
        sys.stdout.write(f"--- worker log ({process.log_path}) ---\n{process.log()[-4000:]}\n")
