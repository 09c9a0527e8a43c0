from __future__ import annotations

from django.apps import AppConfig


class HostingConfig(AppConfig):
    name = "hosting"
