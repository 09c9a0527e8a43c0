from __future__ import annotations

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The custom user model, present from the first migration so that it can grow later."""

    class Meta:
        ordering = ["username"]
