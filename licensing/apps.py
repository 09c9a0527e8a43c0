from __future__ import annotations

from django.apps import AppConfig


class LicensingConfig(AppConfig):
    name = "licensing"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts.authcache import auth_inputs_changed
        from licensing.models import License

        post_save.connect(auth_inputs_changed, sender=License, dispatch_uid="authcache-save-License")
        post_delete.connect(auth_inputs_changed, sender=License, dispatch_uid="authcache-delete-License")
