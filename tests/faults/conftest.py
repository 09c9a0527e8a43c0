"""Private Redis and PostgreSQL instances that a fault test may stop, kill and restart.

The shared services on 5432/6379 serve every other checkout and CI: they are never touched. A
fault test points the real server and worker subprocesses at one of these instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.finetune.conftest import project, training_files  # noqa: F401 - fixtures for the training faults
from tests.support.server import REPO, free_port, server_environment, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PG_BIN = Path(os.environ.get("REFACT_PG_BIN", "/usr/local/bin"))


def _reachable(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return False
    return True


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: drop to the `postgres` account when we are root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without `runuser`: cannot start a private PostgreSQL")
    return [runuser, "-u", "postgres", "--"]


@dataclass
class PrivateRedis:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # No persistence: a restart forgets every queued message, the worst case for the broker.
        self.process = subprocess.Popen(  # noqa: S603
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _reachable(("127.0.0.1", self.port)), timeout=10, message="the private Redis")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a crash would: no goodbye to the clients
            self.process.wait(10)
        self.process = None

    def restart(self, *, down_seconds: float = 0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


@dataclass
class PrivatePostgres:
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/refact"

    def _pg_ctl(self, *arguments: str) -> None:
        command = [*_as_postgres_user(), str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), *arguments]
        subprocess.run(command, check=True, capture_output=True, timeout=60)  # noqa: S603

    def init(self) -> None:
        data = self.directory / "data"
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        command = [*_as_postgres_user(), str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres"]
        subprocess.run([*command, "--auth=trust", "--no-sync"], check=True, capture_output=True, timeout=120)  # noqa: S603
        # Small and fast: a test database, thrown away afterwards.
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "-l", str(self.directory / "postgres.log"), "-w", "start")

    def stop(self) -> None:
        """`-m immediate`: the server process dies without a clean shutdown, as in a crash."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE refact")


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"redis-server not found ({REDIS_SERVER}): the Redis restart fault needs a private instance")
    redis = PrivateRedis(port=free_port(), directory=Path(tempfile.mkdtemp(prefix="refact-fault-redis-")))
    redis.start()
    yield redis
    redis.stop()
    shutil.rmtree(redis.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A migrated private PostgreSQL (one per session: initdb and migrate take seconds)."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"initdb/pg_ctl not found in {PG_BIN} (set REFACT_PG_BIN): the PostgreSQL restart fault needs them")
    postgres = PrivatePostgres(port=free_port(), directory=Path(tempfile.mkdtemp(prefix="refact-fault-pg-")))
    postgres.init()
    postgres.start()
    try:
        postgres.create_database()
        subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO,
            env=server_environment(DATABASE_URL=postgres.url),
            check=True,
            capture_output=True,
            timeout=300,
        )
        yield postgres
    finally:
        try:
            postgres.stop()
        except subprocess.CalledProcessError:
            pass  # already down
        shutil.rmtree(postgres.directory, ignore_errors=True)
