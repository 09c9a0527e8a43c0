from __future__ import annotations

from django.apps import AppConfig

from refact_site import compat


class RefactSiteConfig(AppConfig):
    name = "refact_site"
    verbose_name = "Refact server"

    def ready(self) -> None:
        compat.install()

        # Declare every app's Dramatiq actors in every process, so the web can send messages to
        # actors whose heavy code (torch) only the worker ever imports.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks")
