"""Reads about the license and the edition; other apps call `edition()` and `license_active()`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.utils import timezone

from licensing import tokens
from licensing.models import License

ENTERPRISE = "enterprise"
SELF_HOSTED = "self-hosted"


@lru_cache(maxsize=8)
def _trusted(value: str) -> dict:
    return tokens.parse_public_keys(value)


def trusted_keys() -> dict:
    return _trusted(settings.REFACT_LICENSE_PUBLIC_KEYS)


@lru_cache(maxsize=64)
def _signature_check(token: str, keys_value: str) -> tokens.LicensePayload | tokens.LicenseError:
    """Signature verification of a stored token (dates are checked on every read, not cached)."""
    try:
        payload = tokens.decode_unverified(token)
        return tokens.verify(token, trusted=_trusted(keys_value), now=payload.nbf)
    except tokens.LicenseError as error:
        return error


@dataclass(frozen=True)
class LicenseState:
    active: bool
    license: License | None
    # Why it is not active, or None.
    problem: str | None
    expires_at: datetime | None = None
    warning: str | None = None

    @property
    def edition(self) -> str:
        return ENTERPRISE if self.active else SELF_HOSTED

    @property
    def seats(self) -> int:
        return self.license.seats if self.active and self.license else 0


def current_license() -> License | None:
    return License.objects.filter(removed_at__isnull=True).first()


_CURRENT = object()


def license_state(*, now: datetime | None = None, current: License | None | object = _CURRENT) -> LicenseState:
    """The edition now; CURRENT is the current license row where the caller has already read it."""
    now = now or timezone.now()
    if current is _CURRENT:
        current = current_license()
    if current is None:
        return LicenseState(active=False, license=None, problem="No license is active")
    checked = _signature_check(current.token, settings.REFACT_LICENSE_PUBLIC_KEYS)
    if isinstance(checked, tokens.LicenseError):
        return LicenseState(active=False, license=current, problem=str(checked), expires_at=current.expires_at)
    try:
        tokens.check_dates(checked, now=now)
    except tokens.LicenseError as error:
        return LicenseState(active=False, license=current, problem=str(error), expires_at=current.expires_at)
    warning = None
    left = current.expires_at - now
    if left <= timedelta(days=settings.REFACT_LICENSE_WARNING_DAYS):
        days = max(left.days, 0)
        when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
        warning = (
            f"The license expires {when} ({current.expires_at:%Y-%m-%d %H:%M} UTC): users other than the admin "
            "will lose access until a new license is activated"
        )
    return LicenseState(active=True, license=current, problem=None, expires_at=current.expires_at, warning=warning)


def license_active() -> bool:
    """True when an Enterprise license is active now (users, teams, team preferences)."""
    return license_state().active


def edition() -> str:
    """`"enterprise"` with an active license, else `"self-hosted"`."""
    return license_state().edition


def seats_used() -> int:
    """Active non-admin users: each takes a seat; admins and deactivated users do not."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(is_active=True, is_staff=False).count()
