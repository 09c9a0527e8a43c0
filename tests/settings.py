"""Test settings: the production settings plus a test-only app and fast password hashing."""

from __future__ import annotations

import os

from tests.support.licenses import trust_test_key

# Before the settings read it: this process and the servers it starts trust the test license key.
trust_test_key()
# Many tests send wrong keys from 127.0.0.1 on purpose: only the rate-limit test (which lowers it) may hit it.
os.environ["REFACT_AUTH_FAILURE_LIMIT"] = "100000"

from refact_site.settings import *  # noqa: E402, F403
from refact_site.settings import DATA_DIR, DATABASES, INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
# Users made by tests log in through the test client only; servers started by tests use their own.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: server processes started by the tests open the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
