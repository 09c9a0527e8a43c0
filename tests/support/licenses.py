"""Test licenses: a key pair generated in each test process and trusted through REFACT_LICENSE_PUBLIC_KEYS.

`trust_test_key()` runs from tests/settings.py before the settings are read, so servers started by the
tests (which inherit the environment) trust the same key. The product's own key is never used here.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from licensing import tokens

TEST_KID = "tests"
PRIVATE_KEY = Ed25519PrivateKey.generate()


def trust_test_key() -> None:
    os.environ["REFACT_LICENSE_PUBLIC_KEYS"] = f"{TEST_KID}:{tokens.public_key_b64(PRIVATE_KEY)}"


def license_token(*, customer: str = "Example Corp", seats: int = 10, days: int = 365, **kwargs) -> str:
    return tokens.issue(private_key=PRIVATE_KEY, kid=TEST_KID, customer=customer, seats=seats, days=days, **kwargs)


def activate_test_license(**kwargs):
    """Activate a valid Enterprise license signed by the test key; returns the License row."""
    from licensing.services import license_activate

    return license_activate(token=license_token(**kwargs))
