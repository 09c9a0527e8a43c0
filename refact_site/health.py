"""Health of the parts the server depends on: database, broker, workers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dramatiq
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from dramatiq.brokers.stub import StubBroker

CHECK_TIMEOUT_SECONDS = 2


def _failure(error: Exception) -> dict[str, Any]:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return {"ok": False, "error": f"{type(error).__name__}: {first_line}"[:200]}


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        return {**_failure(error), "backend": connection.vendor}
    return {"ok": True, "backend": connection.vendor}


def check_broker() -> dict[str, Any]:
    broker = dramatiq.get_broker()
    if isinstance(broker, StubBroker):
        return {"ok": True, "backend": "in-process"}
    url = settings.BROKER_URL
    try:
        if url.startswith(("amqp://", "amqps://")):
            import pika

            parameters = pika.URLParameters(url)
            parameters.socket_timeout = CHECK_TIMEOUT_SECONDS
            parameters.connection_attempts = 1
            pika.BlockingConnection(parameters).close()
            return {"ok": True, "backend": "rabbitmq"}
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()
        return {"ok": True, "backend": "redis"}
    except Exception as error:
        return {**_failure(error), "backend": "rabbitmq" if url.startswith("amqp") else "redis"}


def check_workers() -> dict[str, Any]:
    from hosting.selectors import worker_node_list_alive

    try:
        alive = worker_node_list_alive(within=timedelta(seconds=settings.REFACT_WORKER_STALE_SECONDS))
    except Exception as error:
        return _failure(error)
    now = timezone.now()
    nodes = [
        {"name": node.name, "heartbeat_age_s": round((now - node.heartbeat_at).total_seconds(), 1)} for node in alive
    ]
    if not nodes:
        return {"ok": False, "error": "no worker has sent a heartbeat recently", "nodes": []}
    return {"ok": True, "nodes": nodes}


def health_report(*, detailed: bool) -> tuple[bool, dict[str, Any]]:
    checks = {"database": check_database(), "broker": check_broker(), "worker": check_workers()}
    failing = [name for name, result in checks.items() if not result["ok"]]
    if not detailed:  # anonymous callers learn what is down, not hostnames or addresses
        for result in checks.values():
            result.pop("error", None)
            result.pop("nodes", None)
    return not failing, {"status": "ok" if not failing else "unhealthy", "failing": failing, "checks": checks}
