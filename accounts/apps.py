from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from accounts.authcache import auth_inputs_changed
        from accounts.models import ApiKey, Team, User

        for model in (ApiKey, User, Team):
            post_save.connect(auth_inputs_changed, sender=model, dispatch_uid=f"authcache-save-{model.__name__}")
            post_delete.connect(auth_inputs_changed, sender=model, dispatch_uid=f"authcache-delete-{model.__name__}")
