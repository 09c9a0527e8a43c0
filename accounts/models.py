from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """The custom user model, present from the first migration so that it can grow later."""

    # At most one team per user. Deleting a team keeps its users (they become team-less).
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")

    class Meta:
        ordering = ["username"]


class ApiKey(models.Model):
    """A plugin/REST key `rfx_<key_id>.<secret>`; only an HMAC of the secret and its last 4 characters are kept."""

    PREFIX = "rfx_"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    # Public, unique: finds the row without scanning; the secret is checked against secret_hash.
    key_id = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=64)
    last4 = models.CharField(max_length=4)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user__username", "created_at", "id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.display} ({self.name})"

    @property
    def display(self) -> str:
        """What may be shown anywhere: the public part and the last 4 characters, never the secret."""
        return f"{self.PREFIX}{self.key_id}.…{self.last4}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now=None) -> bool:
        from django.utils import timezone

        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):  # noqa: ARG002
        raise PermissionError("The audit log is append-only")

    def delete(self):
        raise PermissionError("The audit log is append-only")


class AuditEntry(models.Model):
    """One admin-visible change: who, when, what, and a short diff. Append-only."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The actor may be deleted later; their name stays readable.
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    diff = models.JSONField(default=dict, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("The audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit log is append-only")


class TeamPreference(models.Model):
    """A team's default completion model (project empty) or its override for one project.

    The model is a catalogue name or a LoRA published as `base:run:checkpoint`.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="preferences")
    project = models.ForeignKey(
        "projects.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="team_preferences"
    )
    completion_model = models.CharField(max_length=300)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__name", "project__name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team"], condition=models.Q(project__isnull=True), name="team_default_preference_unique"
            ),
            models.UniqueConstraint(
                fields=["team", "project"],
                condition=models.Q(project__isnull=False),
                name="team_project_preference_unique",
            ),
        ]

    def __str__(self) -> str:
        where = f" / {self.project.name}" if self.project_id else ""
        return f"{self.team.name}{where}: {self.completion_model}"
