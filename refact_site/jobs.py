"""Long work is a database row: status, progress, ETA, error, heartbeat.

Workers claim a row by compare-and-set, so two workers never run the same job, and a job whose
worker stopped sending heartbeats can be taken over. The database is the source of truth; broker
messages are only wake-up calls, which is why re-sending them on start is always safe.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from typing import ClassVar

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
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


def job_models() -> list[type[Job]]:
    return [model for model in apps.get_models() if issubclass(model, Job) and model.ACTOR]


def requeue_unfinished() -> int:
    """Send a wake-up for every unfinished job whose worker is not alive; returns the count."""
    count = 0
    for model in job_models():
        actor = import_string(model.ACTOR)
        for pk in model.objects.filter(model.claimable()).values_list("pk", flat=True):
            actor.send(pk)
            count += 1
    if count:
        logger.info("re-queued %d unfinished job(s)", count)
    return count
