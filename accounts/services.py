from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from accounts.models import User

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdminBootstrap:
    user: User
    created: bool
    # Set only when a password was generated: it is shown once and never stored in clear.
    generated_password: str | None = None


@transaction.atomic
def admin_bootstrap(*, token: str | None = None, username: str | None = None) -> AdminBootstrap:
    """Make sure the admin exists; ENTERPRISE_ADMIN_TOKEN, when set, is its password on every start.

    An operator who forgot the password sets a new token and restarts; no data is touched.
    Without a token, a random password is generated for a new admin and returned once.
    """
    token = settings.ENTERPRISE_ADMIN_TOKEN if token is None else token
    username = username or settings.REFACT_ADMIN_USERNAME
    user = User.objects.select_for_update().filter(username=username).first()
    created = user is None
    if user is None:
        user = User(username=username, is_staff=True, is_superuser=True, is_active=True)
    generated = None
    if token:
        if created or not user.check_password(token):
            user.set_password(token)
    elif created:
        generated = secrets.token_urlsafe(15)
        user.set_password(generated)
    user.is_staff = user.is_superuser = user.is_active = True
    user.save()
    return AdminBootstrap(user=user, created=created, generated_password=generated)
