"""Usage rows of the plugin API, written in batches off the request path.

A request appends its row here (no I/O, no thread hop); the event loop writes what has gathered a
fraction of a second later in one INSERT. Rows a write could not store (the database is away) wait
for the next write, up to a bound; what is still here when the process exits is written then.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async

logger = logging.getLogger(__name__)
FLUSH_SECONDS = 0.5
MAX_PENDING = 20_000  # a long database outage drops the oldest rows beyond this, with a warning

_lock = threading.Lock()
_pending: list[dict[str, Any]] = []
# Loops with a write scheduled: a test client's loop may end before its write runs; the next loop
# (or the exit hook) writes those rows.
_scheduled: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_tasks: set[asyncio.Task] = set()


def usage_record(**row: Any) -> None:
    """Queue one usage row (fields of `stats.services.completion_served_record`)."""
    from django.utils import timezone

    row.setdefault("created_at", timezone.now())
    with _lock:
        _pending.append(row)
        _trim()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # called from synchronous code: write now
        usage_flush_now()
        return
    if loop not in _scheduled:
        _scheduled.add(loop)
        loop.call_later(FLUSH_SECONDS, _start_flush, loop)


def _take() -> list[dict[str, Any]]:
    global _pending
    with _lock:
        rows, _pending = _pending, []
    return rows


def _give_back(rows: list[dict[str, Any]]) -> None:
    with _lock:
        _pending[:0] = rows
        _trim()


def _trim() -> None:
    """Drop the oldest rows beyond MAX_PENDING (the caller holds the lock)."""
    if len(_pending) > MAX_PENDING:
        dropped = len(_pending) - MAX_PENDING
        del _pending[:dropped]
        logger.warning("usage buffer full: dropped the %d oldest rows", dropped)


def _start_flush(loop: asyncio.AbstractEventLoop) -> None:
    _scheduled.discard(loop)
    task = loop.create_task(usage_flush())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


# A thread (and database connection) of its own: in the shared thread of sync_to_async a write of a
# few milliseconds held up every plugin request's key check and routing queued behind it.
_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-writer")


async def usage_flush() -> None:
    """Write every queued row (from the event loop)."""
    rows = _take()
    if rows:
        await sync_to_async(_write, thread_sensitive=False, executor=_writer)(rows)


def usage_flush_now() -> None:
    """Write every queued row (from synchronous code: tests, the exit hook)."""
    rows = _take()
    if rows:
        _write(rows)


def _write(rows: list[dict[str, Any]]) -> None:
    from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

    from stats.services import completions_served_record

    try:
        with transaction.atomic():
            completions_served_record(rows)
    except (InterfaceError, OperationalError) as error:
        # The database is away: the rows wait for the next write, on a fresh connection.
        connection.close()
        logger.warning("could not write %d usage rows (kept for the next write): %s", len(rows), error)
        _give_back(rows)
    except DatabaseError:
        # A row the database refuses would refuse the whole batch every time: write them one by one.
        for row in rows:
            try:
                with transaction.atomic():  # a savepoint where a caller holds a transaction
                    completions_served_record([row])
            except DatabaseError as error:
                logger.error("usage row refused and dropped: %r (%s)", row, error)


atexit.register(usage_flush_now)
