"""Usage rows of the plugin API are queued and written together, off the request path, and none is lost
to a database outage or to a row the database refuses."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import OperationalError

from stats import buffer
from stats.models import CompletionServed

pytestmark = pytest.mark.django_db(transaction=True)  # an outage closes the connection


def row(user, **fields):
    return {
        "user_id": user.pk,
        "team_id": None,
        "model": "tiny-test",
        "kind": "completion",
        "status": 200,
        "latency_ms": 12,
        **fields,
    }


def test_rows_from_requests_are_written_together_a_moment_later(admin_user) -> None:
    async def requests() -> tuple[int, int]:
        for index in range(3):
            buffer.usage_record(**row(admin_user, chunks=index))
        queued = await sync_to_async(CompletionServed.objects.count)()
        await asyncio.sleep(buffer.FLUSH_SECONDS + 0.3)
        return queued, len(buffer._pending)

    queued, pending = async_to_sync(requests)()
    assert queued == 0 and pending == 0
    rows = CompletionServed.objects.order_by("chunks")
    assert [served.chunks for served in rows] == [0, 1, 2]
    assert {served.username for served in rows} == {admin_user.username}
    # Each row keeps the time of its request, not of the write.
    assert rows[0].created_at <= rows[2].created_at


def test_an_outage_keeps_the_rows_for_the_next_write(admin_user, monkeypatch) -> None:
    from stats import services

    real = services.completions_served_record

    def database_away(rows):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "completions_served_record", database_away)
    buffer.usage_record(**row(admin_user))  # synchronous code writes at once: here it fails
    assert CompletionServed.objects.count() == 0 and len(buffer._pending) == 1
    monkeypatch.setattr(services, "completions_served_record", real)
    buffer.usage_record(**row(admin_user, status=503))
    assert sorted(CompletionServed.objects.values_list("status", flat=True)) == [200, 503]
    assert buffer._pending == []


def test_a_row_the_database_refuses_is_dropped_alone(admin_user, caplog) -> None:
    buffer._pending.extend([row(admin_user, chunks=1), row(admin_user, status=-1), row(admin_user, chunks=3)])
    buffer.usage_flush_now()
    assert sorted(CompletionServed.objects.values_list("chunks", flat=True)) == [1, 3]
    assert buffer._pending == []
    assert "usage row refused and dropped" in caplog.text
