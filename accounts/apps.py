from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from accounts.models import ApiKey, Team, User

        for model in (ApiKey, User, Team):
            post_save.connect(auth_inputs_changed, sender=model, dispatch_uid=f"authcache-save-{model.__name__}")
            post_delete.connect(auth_inputs_changed, sender=model, dispatch_uid=f"authcache-delete-{model.__name__}")


# Saves that change nothing authentication reads (a web login stamps last_login).
_UNREAD_FIELDS = frozenset({"last_login", "last_used"})


def auth_inputs_changed(sender, update_fields=None, **kwargs) -> None:
    """A key, a user, a team or the license was saved or deleted: kept keys are read afresh."""
    if update_fields is not None and set(update_fields) <= _UNREAD_FIELDS:
        return
    from accounts.authcache import generation_changed

    generation_changed()
