from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Project(models.Model):
    """The sources a model learns from. Owned by a team, or by the admin (Self-hosted: team is empty)."""

    name = models.CharField(max_length=100)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="projects")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], condition=Q(team__isnull=False), name="project_name_unique_per_team"
            ),
            models.UniqueConstraint(
                fields=["name"], condition=Q(team__isnull=True), name="project_name_unique_without_team"
            ),
        ]

    def __str__(self) -> str:
        return self.name
