from __future__ import annotations

from django.apps import AppConfig


class RefactSiteConfig(AppConfig):
    name = "refact_site"
    verbose_name = "Refact server"

    def ready(self) -> None:
        # Declare every app's Dramatiq actors in every process, so the web can send messages to
        # actors whose heavy code (torch) only the worker ever imports.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks")
