from __future__ import annotations

import pytest

from accounts.models import User
from accounts.services import admin_bootstrap

pytestmark = pytest.mark.django_db


def test_the_token_is_the_admin_password_and_follows_it():
    first = admin_bootstrap(token="first-token-123")
    assert first.created and first.generated_password is None
    assert first.user.is_superuser and first.user.is_staff
    assert first.user.check_password("first-token-123")

    # The operator forgot it: a new token and a restart set the new password, nothing else changes.
    again = admin_bootstrap(token="second-token-456")
    assert not again.created
    assert again.user.pk == first.user.pk
    assert again.user.check_password("second-token-456")
    assert not again.user.check_password("first-token-123")
    assert User.objects.count() == 1


def test_without_a_token_a_random_password_is_generated_once_and_stored_hashed():
    result = admin_bootstrap(token="")
    password = result.generated_password
    assert password and len(password) >= 16
    stored = User.objects.get(username="admin").password
    assert password not in stored
    assert result.user.check_password(password)

    later = admin_bootstrap(token="")
    assert later.generated_password is None
    assert later.user.check_password(password)


def test_a_demoted_admin_is_restored_on_start():
    admin_bootstrap(token="token-abc-123")
    User.objects.filter(username="admin").update(is_active=False, is_superuser=False)
    user = admin_bootstrap(token="token-abc-123").user
    assert user.is_active and user.is_superuser
