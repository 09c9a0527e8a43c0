"""Usage: what the plugin API served (written by the proxy) and what plugins report (telemetry).

Names of the user and team are copied into each row so that history stays readable after either
is deleted; the foreign keys let a team's usage be scoped and filtered.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class CompletionServed(models.Model):
    KINDS = [("completion", "completion"), ("chat", "chat"), ("embeddings", "embeddings")]

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    team = models.ForeignKey("accounts.Team", null=True, on_delete=models.SET_NULL, related_name="+")
    team_name = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=300)
    kind = models.CharField(max_length=20, choices=KINDS)
    status = models.PositiveSmallIntegerField()
    latency_ms = models.PositiveIntegerField(help_text="From the request to the last byte.")
    first_token_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Streams: to the first event.")
    streamed = models.BooleanField(default=False)
    chunks = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "completions served"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.username} {self.model} {self.kind}"


class TelemetryRecord(models.Model):
    """One record of a plugin's telemetry (`robot_human`, `comp_counters`, snippets...)."""

    KINDS = [("basic", "basic"), ("snippet", "snippet")]

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    team = models.ForeignKey("accounts.Team", null=True, on_delete=models.SET_NULL, related_name="+")
    team_name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=10, choices=KINDS)
    teletype = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=300, blank=True)
    language = models.CharField(max_length=50, blank=True)
    completions = models.PositiveIntegerField(default=0)
    accepted_characters = models.PositiveIntegerField(default=0, help_text="Characters written by the model and kept.")
    human_characters = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.username} {self.teletype} {self.model}"
