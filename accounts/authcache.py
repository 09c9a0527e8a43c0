"""API keys, their users and the license, kept in memory for the plugin API until any of them changes.

Every plugin request authenticates its key. With PostgreSQL, reading the key and its user took about
0.9 ms of the 3.7 ms a request spent in our API beyond relaying (and, for a user other than the admin,
reading the license took another trip). Here each web process keeps what it read, stamped with the
*auth generation*: a token that every change to a key, a user, a team or the license replaces
(signals: `auth_inputs_changed`). The generation is read before the key is checked, in the same round
trip as the failed-attempt counters (on completions, chat and embeddings: the in-flight slot's, in
`hosting.limits`), so a revoked key, a deactivated user or a removed license is refused by every web
process on its very next request, as it was without this memory.

Where the generation lives: in the shared cache (Redis) when REDIS_URL is set, else in a file in the
data directory. The embedded default's cache is in-process, and `manage.py key_revoke` runs in a
process of its own; replacing a file is seen by every process on the machine (a `stat` per request).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

GENERATION_KEY = "accounts:auth:generation"
# A change that no signal announces (a raw SQL update, a restore) is still seen within this long.
MAX_AGE_SECONDS = 60.0
MAX_ENTRIES = 10_000

# key_id -> (the key with its user, generation, when read); "license" -> (License | None, ...)
_entries: dict[str, tuple[Any, object, float]] = {}
_LICENSE = ":license"  # not a key id (those are hex)


def _shared() -> bool:
    return bool(settings.REDIS_URL)


def _path() -> Path:
    return Path(settings.AUTH_GENERATION_FILE)


def generation_cache_keys() -> list[str]:
    """Cache keys to read with the failed-attempt counters (none where the generation is a file)."""
    return [GENERATION_KEY] if _shared() else []


def generation_from(values: dict[str, Any]) -> object | None:
    """The current generation, from VALUES (what `cache.get_many` returned for `generation_cache_keys`).

    None when there is none yet: one is made, and nothing read under None is kept."""
    if _shared():
        generation = values.get(GENERATION_KEY)
    else:
        try:
            stat = os.stat(_path())
        except FileNotFoundError:
            generation = None
        else:
            # Each bump replaces the file: a new inode and a new time (an inode number alone can be reused).
            generation = (stat.st_ino, stat.st_mtime_ns)
    if generation is None:
        _bump()
    return generation


def _bump() -> None:
    if _shared():
        # An integer: Django's Redis cache stores it as it is, so the plugin API's limiter can read it raw.
        cache.set(GENERATION_KEY, secrets.randbits(62), timeout=None)
        return
    token = secrets.token_hex(8)
    path = _path()
    temporary = path.with_name(f".{path.name}.{token}")
    temporary.write_text(token)
    os.replace(temporary, path)


def generation_changed() -> None:
    """Something authentication reads has changed: every web process reads it afresh.

    Bumped at once (the change is visible to this connection, and to tests that never commit) and
    again after the commit: a request that read the first new generation could still have read the
    old rows from another connection, and must not keep them."""
    _bump()
    transaction.on_commit(_bump)


# Saves that change nothing authentication reads (a web login stamps last_login).
_UNREAD_FIELDS = frozenset({"last_login", "last_used"})


def auth_inputs_changed(sender, update_fields=None, **kwargs) -> None:
    """Signal receiver (accounts and licensing connect it): a key, a user, a team or the license was
    saved or deleted."""
    if update_fields is not None and set(update_fields) <= _UNREAD_FIELDS:
        return
    generation_changed()


def _fresh(name: str, generation: object | None) -> Any:
    entry = _entries.get(name)
    if entry is None or generation is None or entry[1] != generation:
        return None
    if time.monotonic() - entry[2] > MAX_AGE_SECONDS:
        return None
    return entry


def _keep(name: str, value: Any, generation: object | None) -> None:
    if generation is None:
        return
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[name] = (value, generation, time.monotonic())


def api_key_with_user(key_id: str, generation: object | None):
    """`accounts.selectors.api_key_with_user`, from memory while GENERATION is the one it was read under.

    Unknown key ids are not kept (nobody can fill the memory with guesses)."""
    from accounts.selectors import api_key_with_user as read

    entry = _fresh(key_id, generation)
    if entry is not None:
        return entry[0]
    key = read(key_id)
    if key is not None:
        _keep(key_id, key, generation)
    return key


def current_license(generation: object | None):
    """`licensing.selectors.current_license`, from memory while GENERATION is the one it was read under."""
    from licensing.selectors import current_license as read

    entry = _fresh(_LICENSE, generation)
    if entry is not None:
        return entry[0]
    license = read()
    _keep(_LICENSE, license, generation)
    return license


def forget() -> None:
    """Drop what this process kept and make every process read afresh: for tests, whose rolled-back
    transactions no signal announces."""
    _entries.clear()
    _bump()
