from __future__ import annotations

from django.conf import settings
from django.db import models

from refact_site.text import count_noun


class License(models.Model):
    """An activated license token. Rows are kept when replaced or removed (history, audit)."""

    token = models.TextField()
    license_id = models.CharField(max_length=100)
    customer = models.CharField(max_length=200)
    seats = models.PositiveIntegerField()
    features = models.JSONField(default=list)
    kid = models.CharField(max_length=100)
    issued_at = models.DateTimeField()
    valid_from = models.DateTimeField()
    expires_at = models.DateTimeField()
    activated_at = models.DateTimeField(auto_now_add=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when removed or replaced by a newer activation: the current license is the one without it.
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-activated_at", "-id"]

    def __str__(self) -> str:
        return f"{self.customer} ({count_noun(self.seats, 'seat')}, until {self.expires_at:%Y-%m-%d})"
