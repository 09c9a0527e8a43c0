"""Test settings: the production settings plus a test-only app and fast password hashing."""

from __future__ import annotations

from refact_site.settings import *  # noqa: F403
from refact_site.settings import DATA_DIR, DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
# Users made by tests log in through the test client only; servers started by tests use their own.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: server processes started by the tests open the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
