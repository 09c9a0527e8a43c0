"""Long work is a database row: status, progress, ETA, error, heartbeat.

Workers claim a row by compare-and-set, so two workers never run the same job, and a job whose
worker stopped sending heartbeats can be taken over. The database is the source of truth; broker
messages are only wake-up calls, which is why re-sending them on start is always safe.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import ClassVar

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def worker_identity() -> str:
    return settings.REFACT_WORKER_NAME or f"{socket.gethostname()}:{os.getpid()}"


class Job(models.Model):
    # Subclasses name their states and the actor that takes the row's primary key.
    PENDING_STATES: ClassVar[tuple[str, ...]] = ("queued",)
    ACTIVE_STATES: ClassVar[tuple[str, ...]] = ("running",)
    ACTOR: ClassVar[str] = ""
    # A job whose worker died this many times is given up, not retried for ever.
    MAX_ATTEMPTS: ClassVar[int] = 3

    status = models.CharField(max_length=20, default="queued", db_index=True)
    progress = models.FloatField(default=0.0, help_text="Percent done.")
    eta_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="The worker that claimed the job.")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status not in (*self.PENDING_STATES, *self.ACTIVE_STATES)

    @classmethod
    def stale_before(cls) -> timezone.datetime:
        return timezone.now() - timedelta(seconds=settings.REFACT_WORKER_STALE_SECONDS)

    @classmethod
    def claimable(cls) -> Q:
        """Pending rows, and active rows whose worker stopped sending heartbeats."""
        return Q(status__in=cls.PENDING_STATES) | Q(
            Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cls.stale_before()),
            status__in=cls.ACTIVE_STATES,
        )

    @classmethod
    def claim(cls, pk: int, *, to_state: str, worker: str | None = None) -> bool:
        """Compare-and-set: True for exactly one caller, whoever else tries at the same time."""
        now = timezone.now()
        updated = cls.objects.filter(cls.claimable(), pk=pk).update(
            status=to_state,
            worker=worker or worker_identity(),
            heartbeat_at=now,
            started_at=Coalesce(F("started_at"), now),
            attempts=F("attempts") + 1,
        )
        return updated == 1

    @property
    def attempts_exhausted(self) -> bool:
        """True once claimed more than MAX_ATTEMPTS times: every claim after the first means a worker died."""
        return self.attempts > self.MAX_ATTEMPTS

    @property
    def exhausted_message(self) -> str:
        return (
            f"the worker stopped {self.attempts - 1} times while running this job "
            f"(at most {self.MAX_ATTEMPTS} attempts); giving up"
        )

    def beat(self, **fields: object) -> bool:
        """Record liveness (and progress fields). False if another worker has taken the job over."""
        fields["heartbeat_at"] = timezone.now()
        updated = type(self).objects.filter(pk=self.pk, worker=self.worker).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)
        return updated == 1

    def enqueue(self) -> None:
        """Wake a worker once the row is committed, so the worker never sees an uncommitted row."""
        actor = import_string(self.ACTOR)
        pk = self.pk
        transaction.on_commit(lambda: actor.send(pk))


@contextmanager
def keepalive(job: Job) -> Iterator[None]:
    """Beat from a side thread while the body runs: one long step (unpacking a big archive, a slow
    training step) must not look like a dead worker and be taken over while it is still running."""
    stop = threading.Event()
    interval = max(1.0, settings.REFACT_WORKER_STALE_SECONDS / 4)
    model = type(job)

    def loop() -> None:
        try:
            while not stop.wait(interval):
                try:
                    if not model.objects.filter(pk=job.pk, worker=job.worker).update(heartbeat_at=timezone.now()):
                        return  # taken over: the work's own beat() finds out and stops
                except Exception as error:  # the database may be down for a moment: try again
                    logger.warning("keep-alive of %s %s failed: %s", model.__name__, job.pk, error)
                    close_old_connections()
        finally:
            close_old_connections()

    thread = threading.Thread(target=loop, name=f"keepalive-{model.__name__}-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(interval + 5)


def job_models() -> list[type[Job]]:
    return [model for model in apps.get_models() if issubclass(model, Job) and model.ACTOR]


def requeue_unfinished(*, orphans_only: bool = False) -> int:
    """Send a wake-up for every unfinished job whose worker is not alive; returns the count.

    orphans_only: only active jobs whose worker stopped beating (a periodic sweep must not pile up
    duplicate messages for queued jobs that are merely waiting their turn).
    """
    count = 0
    for model in job_models():
        actor = import_string(model.ACTOR)
        rows = model.objects.filter(model.claimable())
        if orphans_only:
            rows = rows.filter(status__in=model.ACTIVE_STATES)
        for pk in rows.values_list("pk", flat=True):
            actor.send(pk)
            count += 1
    if count:
        logger.info("re-queued %d unfinished job(s)", count)
    return count


def release_own_jobs(*, worker: str, started_at: timezone.datetime) -> int:
    """Active jobs recorded under this worker's own name and last beaten before it started were left by
    its previous life (a restarted container keeps its name): make them claimable now rather than after
    the stale window. Jobs this life has already claimed beat after `started_at` and stay put."""
    released = 0
    for model in job_models():
        rows = model.objects.filter(status__in=model.ACTIVE_STATES, worker=worker, heartbeat_at__lt=started_at)
        released += rows.update(heartbeat_at=None)
    if released:
        logger.info("released %d job(s) left by an earlier run of worker %s", released, worker)
    return released
