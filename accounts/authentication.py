"""`Authorization: Bearer rfx_<id>.<secret>` for the plugin API and the REST API."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts import authcache
from accounts.models import ApiKey

# accounts.services is imported inside the methods: DRF imports this module while rest_framework.views
# is still initialising, and the services import the project's exception handler, which imports it.

# Compared against when the key id is unknown, so that both paths cost one HMAC and one compare.
_DUMMY_HASH = "0" * 64


def client_address(request) -> str:
    if settings.REFACT_TRUST_PROXY_HEADERS:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _failure_keys(request, key_id: str | None) -> list[str]:
    keys = [f"accounts:authfail:client:{client_address(request)}"]
    if key_id:
        keys.append(f"accounts:authfail:key:{key_id}")
    return keys


def _over_limit(keys: list[str], values: dict) -> bool:
    return any(int(values[key]) >= settings.REFACT_AUTH_FAILURE_LIMIT for key in keys if key in values)


def _count_failure(keys: list[str]) -> None:
    for key in keys:
        # add() starts the window; incr() on the existing key keeps its expiry (Redis and locmem alike).
        cache.add(key, 0, timeout=settings.REFACT_AUTH_FAILURE_WINDOW)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=settings.REFACT_AUTH_FAILURE_WINDOW)


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def __init__(self, *, remember: bool = False) -> None:
        # REMEMBER: keep verified keys in memory until something they depend on changes
        # (`accounts.authcache`); only where the request reads the user and never changes it.
        self.remember = remember

    def credentials(self, request) -> tuple[str | None, str | None] | None:
        """(key id, secret) of the request's Bearer key, (None, None) for a malformed key; None when
        the request carries no Bearer header (not ours: session authentication may still apply)."""
        from accounts.services import api_key_parse

        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <api key>'")
        try:
            plaintext = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key") from None
        return api_key_parse(plaintext) or (None, None)

    def cache_keys(self, request, key_id: str | None) -> list[str]:
        """What `authenticate` reads from the cache: the failed-attempt counters, the auth generation."""
        generation_keys = authcache.generation_cache_keys() if self.remember else []
        return [*_failure_keys(request, key_id), *generation_keys]

    def authenticate(self, request, values: dict | None = None):
        """VALUES: what the cache holds under `cache_keys`, where the caller has read it already."""
        from accounts.services import api_key_touch

        credentials = self.credentials(request)
        if credentials is None:
            return None
        key_id, secret = credentials
        limit_keys = _failure_keys(request, key_id)
        if values is None:
            values = cache.get_many(self.cache_keys(request, key_id))  # one round trip to Redis
        if _over_limit(limit_keys, values):
            raise exceptions.Throttled(
                wait=settings.REFACT_AUTH_FAILURE_WINDOW, detail="Too many failed API key attempts; try again later"
            )
        generation = authcache.generation_from(values) if self.remember else None
        key = self._verified_key(key_id, secret, generation)
        if key is None:
            _count_failure(limit_keys)
            raise exceptions.AuthenticationFailed("Invalid API key")
        # The secret matched: from here on the caller holds the key, so telling them why is no leak.
        if key.revoked:
            raise exceptions.AuthenticationFailed("API key revoked")
        if key.expired(timezone.now()):
            raise exceptions.AuthenticationFailed("API key expired")
        if not key.user.is_active:
            raise exceptions.AuthenticationFailed("User deactivated")
        refusal = _edition_refusal(key.user, generation)
        if refusal:
            raise exceptions.AuthenticationFailed(refusal)
        api_key_touch(key=key)
        return key.user, key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'

    @staticmethod
    def _verified_key(key_id: str | None, secret: str | None, generation: object | None) -> ApiKey | None:
        from accounts.services import api_key_hash

        key = authcache.api_key_with_user(key_id, generation) if key_id else None
        expected = key.secret_hash if key else _DUMMY_HASH
        given = api_key_hash(secret or "")
        if hmac.compare_digest(expected, given) and key is not None:
            return key
        return None


class RememberedKeyMixin:
    """For DRF views that plugins call on every session and only read the user with: API keys are
    kept in memory (`accounts.authcache`), so the user object is shared between requests."""

    authentication_classes = [ApiKeyAuthentication]

    def get_authenticators(self) -> list[ApiKeyAuthentication]:
        return [ApiKeyAuthentication(remember=True)]


def _edition_refusal(user, generation: object | None) -> str | None:
    """Without an active license only the admin's keys work (Self-hosted edition); nothing is deleted."""
    if user.is_staff:
        return None
    from licensing.selectors import license_state

    state = license_state(current=authcache.current_license(generation))
    if state.active:
        return None
    return (
        f"API keys of users other than the admin need an active Enterprise license ({state.problem}); "
        "ask your administrator to activate one"
    )
