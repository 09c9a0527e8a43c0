"""Cost of API-key authentication per request, against session authentication, in one run.

Same endpoint (`GET /api/accounts/me/`), same process, same database: one client sends
`Authorization: Bearer rfx_...` (lookup by key id, HMAC-SHA256, constant-time compare, edition check,
rate-limit counters read), the other a logged-in session (the baseline); a third uses a non-admin
user's key, which adds the license check. Prints requests/s of each and the ratios.
Uses a fresh embedded data directory unless DATABASE_URL is set.

    python benchmarks/api_key_auth.py [--requests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rate(client, requests: int, **headers) -> float:
    for _ in range(20):  # warm-up
        assert client.get("/api/accounts/me/", **headers).status_code == 200
    started = time.perf_counter()
    for _ in range(requests):
        client.get("/api/accounts/me/", **headers)
    return requests / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("REFACT_DATA_DIR", tempfile.mkdtemp(prefix="refact-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "refact_site.settings"
    os.environ["ALLOWED_HOSTS"] = "testserver"
    # A throw-away vendor key, trusted for this run only, to license a non-admin user.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from licensing import tokens

    vendor = Ed25519PrivateKey.generate()
    os.environ["REFACT_LICENSE_PUBLIC_KEYS"] = f"bench:{tokens.public_key_b64(vendor)}"
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from accounts.services import admin_bootstrap, api_key_create, user_add
    from licensing.services import license_activate

    call_command("migrate", verbosity=0)
    admin = admin_bootstrap(token="bench-token-123").user  # noqa: S106
    _, key = api_key_create(user=admin, name="bench")
    license_activate(token=tokens.issue(private_key=vendor, kid="bench", customer="Bench", seats=5, days=30))
    _, user_key = user_add(username="bench-user")

    session = Client()
    session.force_login(admin)
    # Interleaved rounds, best of each: the machine's other load hits all three alike.
    runs = {
        "session": lambda: rate(session, args.requests),
        "admin": lambda: rate(Client(), args.requests, HTTP_AUTHORIZATION=f"Bearer {key}"),
        "user": lambda: rate(Client(), args.requests, HTTP_AUTHORIZATION=f"Bearer {user_key}"),
    }
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.rounds):
        for name, run in runs.items():
            best[name] = max(best[name], run())
    baseline, bearer, licensed = best["session"], best["admin"], best["user"]
    print(f"session auth, admin (baseline):       {baseline:8.0f} requests/s")
    print(f"API-key auth, admin:                  {bearer:8.0f} requests/s  ratio {bearer / baseline:.2f}x")
    print(f"API-key auth, user (+ license check): {licensed:8.0f} requests/s  ratio {licensed / baseline:.2f}x")


if __name__ == "__main__":
    main()
