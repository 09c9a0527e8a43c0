from __future__ import annotations

from django.http import HttpRequest


def license_warning(request: HttpRequest) -> dict:
    """Admins see the expiry warning on every page, from 14 days before the license expires."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}
    from licensing.selectors import license_state

    return {"license_warning": license_state().warning}
