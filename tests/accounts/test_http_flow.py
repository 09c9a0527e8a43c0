"""Browser-free, over real HTTP against `manage.py serve`: add a user, use their key, revoke it."""

from __future__ import annotations

import httpx
import pytest

from accounts.services import api_key_create
from tests.support.licenses import activate_test_license
from tests.support.server import running_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services_only]


def test_admin_adds_a_user_whose_key_works_until_revoked(admin_user):
    activate_test_license(seats=5)
    _, admin_key = api_key_create(user=admin_user, name="ops")
    with running_server(ENTERPRISE_ADMIN_TOKEN="http-flow-token-1") as server:
        admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=10)
        team = admin.post("/api/accounts/teams/", json={"name": "Platform"})
        assert team.status_code == 201, team.text
        created = admin.post(
            "/api/accounts/users/", json={"username": "ivy", "email": "ivy@example.com", "team": team.json()["id"]}
        )
        assert created.status_code == 201, created.text
        key = created.json()["api_key"]
        assert key.startswith("rfx_")

        ivy = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        me = ivy.get("/api/accounts/me/")
        assert me.status_code == 200 and me.json() == {
            "username": "ivy",
            "email": "ivy@example.com",
            "team": "Platform",
            "is_admin": False,
        }
        # The key is shown once: listing gives the display form only.
        listed = admin.get("/api/accounts/keys/", params={"user": created.json()["id"]}).json()["results"]
        assert len(listed) == 1 and "key" not in listed[0] and key not in str(listed)

        assert admin.delete(f"/api/accounts/keys/{listed[0]['id']}/").status_code == 200
        refused = ivy.get("/api/accounts/me/")
        assert refused.status_code == 401
        assert refused.json() == {"detail": "API key revoked"}
        assert refused.headers["www-authenticate"].startswith("Bearer")
