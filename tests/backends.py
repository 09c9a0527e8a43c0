"""pytest plugin: choose the back end before Django reads its settings.

--backend=services (default): the machine's PostgreSQL and Redis, as in production.
--backend=embedded: SQLite, in-memory channel layer, local-memory cache, stub broker.
Each checkout gets its own database name and Redis prefix, so parallel checkouts never collide.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
CLEARED = (
    "DATABASE_URL",
    "REDIS_URL",
    "REFACT_BROKER_URL",
    "ENTERPRISE_ADMIN_TOKEN",
    "REFACT_INPROCESS_WORKER",
    "DEBUG",
    "REFACT_HTTPS",
    "ALLOWED_HOSTS",
    "SECRET_KEY",
    "REFACT_WORKER_NAME",
)
missing_services: list[str] = []


def reachable(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return False
    return True


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=["services", "embedded"],
        default=os.environ.get("REFACT_TEST_BACKEND", "services"),
        help="services: PostgreSQL + Redis (default); embedded: SQLite + in-memory back ends",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    backend = early_config.known_args_namespace.backend
    checkout = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    for name in CLEARED:
        os.environ.pop(name, None)
    os.environ["REFACT_TEST_BACKEND"] = backend
    os.environ["REFACT_DATA_DIR"] = tempfile.mkdtemp(prefix=f"refact-test-{backend}-")
    os.environ["REFACT_WORKER_STALE_SECONDS"] = "10"
    if backend == "services":
        missing_services.extend(
            name for name, address in (("PostgreSQL", POSTGRES), ("Redis", REDIS)) if not reachable(address)
        )
        os.environ["DATABASE_URL"] = f"postgres://postgres@{POSTGRES[0]}:{POSTGRES[1]}/refact_{checkout}"
        os.environ["REDIS_URL"] = f"redis://{REDIS[0]}:{REDIS[1]}/0"
        os.environ["REFACT_REDIS_PREFIX"] = f"refact-test-{checkout}-{worker}"


def pytest_report_header(config: pytest.Config) -> str:
    return f"refact back end: {config.getoption('backend')} (data dir {os.environ['REFACT_DATA_DIR']})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = config.getoption("backend")
    if backend == "services" and missing_services:
        skip = pytest.mark.skip(
            reason=f"{' and '.join(missing_services)} not reachable on this machine: "
            "run with --backend=embedded, or start the services"
        )
        for item in items:
            item.add_marker(skip)
    elif backend == "embedded":
        skip = pytest.mark.skip(reason="needs the real services (PostgreSQL, Redis); run with --backend=services")
        for item in items:
            if item.get_closest_marker("services_only"):
                item.add_marker(skip)
