from __future__ import annotations

from django.db import models

from refact_site.jobs import Job


class DemoJob(Job):
    """A job type for testing the job machinery itself."""

    ACTIVE_STATES = ("running",)
    ACTOR = "tests.testapp.tasks.demo_job"

    sleep_seconds = models.FloatField(default=0)
    runs = models.PositiveIntegerField(default=0)
