"""Strict parsing of the environment.

django-environ parses URLs well but is lenient elsewhere (``DEBUG=maybe`` reads as False).
Every reader here raises ``ConfigError`` naming the variable instead of guessing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


class ConfigError(ImproperlyConfigured):
    """A bad value in the environment; the message names the variable."""


def _raw(name: str) -> str | None:
    """The value of NAME, or the contents of the file named by NAME_FILE (for secrets)."""
    value = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if value is not None and file_name is not None:
        raise ConfigError(f"{name}: set either {name} or {name}_FILE, not both")
    if file_name is not None:
        try:
            return Path(file_name).read_text().strip()
        except OSError as error:
            raise ConfigError(f"{name}_FILE: cannot read {file_name!r}: {error.strerror}") from None
    return value


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}: expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(f"{name}: {number} is outside the allowed range [{minimum}, {maximum}]")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "sqlite"}


def env_database(name: str, default_sqlite_path: Path) -> dict[str, Any]:
    """DATABASE_URL as a Django database dict; unset means SQLite in the data directory."""
    value = _raw(name)
    if value is None or value.strip() == "":
        config: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite_path)}
    else:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in DATABASE_SCHEMES:
            raise ConfigError(
                f"{name}: expected postgres://USER@HOST:PORT/NAME or sqlite:///PATH, got a URL with scheme "
                f"{parts.scheme or '(none)'!r}"
            )
        if parts.scheme != "sqlite" and not (parts.hostname and parts.path.strip("/")):
            raise ConfigError(f"{name}: a PostgreSQL URL needs a host and a database name")
        try:
            config = environ.Env.db_url_config(value)
        except (ValueError, KeyError) as error:
            raise ConfigError(f"{name}: cannot parse the URL: {error}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Web requests and worker threads share one file: WAL and IMMEDIATE transactions avoid
        # "database is locked" errors under that concurrency.
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        config.setdefault("OPTIONS", {})["connect_timeout"] = 5
        # One connection per request: after a database restart the next request simply reconnects.
        config["CONN_MAX_AGE"] = 0
        config["CONN_HEALTH_CHECKS"] = True
    return config


def env_url(name: str, schemes: set[str]) -> str:
    value = env_str(name)
    if value and urlsplit(value).scheme not in schemes:
        allowed = ", ".join(sorted(f"{scheme}://" for scheme in schemes))
        raise ConfigError(f"{name}: expected a URL starting with {allowed}, got {value!r}")
    return value


def data_dir_secret(data_dir: Path, file_name: str, *, length: int = 50) -> str:
    """A secret generated once and kept in the data directory (mode 0600), so it survives restarts."""
    path = data_dir / file_name
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(length)
    # O_EXCL: if another process wrote it first, read theirs instead of overwriting.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
