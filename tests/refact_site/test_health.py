from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from hosting.models import WorkerNode

pytestmark = pytest.mark.django_db


def test_healthz_names_the_missing_worker(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["worker"]
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


def test_healthz_is_ok_with_a_live_worker(client, backend):
    WorkerNode.objects.create(name="gpu-1", hostname="gpu-1", pid=1, heartbeat_at=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert checks["database"]["backend"] == ("postgresql" if backend == "services" else "sqlite")
    assert checks["broker"]["backend"] == ("redis" if backend == "services" else "in-process")


def test_a_stale_worker_does_not_count(client):
    WorkerNode.objects.create(
        name="gpu-1", hostname="gpu-1", pid=1, heartbeat_at=timezone.now() - timezone.timedelta(minutes=5)
    )
    assert client.get("/healthz").json()["failing"] == ["worker"]


@pytest.mark.services_only
def test_healthz_names_a_broker_that_is_down(client, settings):
    WorkerNode.objects.create(name="gpu-1", hostname="gpu-1", pid=1, heartbeat_at=timezone.now())
    settings.BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


def test_anonymous_callers_get_no_internal_details(admin_client):
    anonymous = Client().get("/healthz").json()
    assert "error" not in anonymous["checks"]["worker"]
    assert "error" in admin_client.get("/healthz").json()["checks"]["worker"]


@pytest.mark.services_only
def test_rabbitmq_may_be_the_broker(client, settings):
    """REFACT_BROKER_URL=amqp://... uses the machine's RabbitMQ; the health check speaks AMQP to it."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    WorkerNode.objects.create(name="gpu-1", hostname="gpu-1", pid=1, heartbeat_at=timezone.now())
    settings.BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"]["backend"] == "rabbitmq"
    settings.BROKER_URL = "amqp://guest:guest@127.0.0.1:1/"
    assert client.get("/healthz").json()["failing"] == ["broker"]
