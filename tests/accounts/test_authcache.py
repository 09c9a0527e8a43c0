"""The plugin API keeps verified keys in memory (`accounts.authcache`): read once, refused at once
after any change, in this process and in a server process changed from another one."""

from __future__ import annotations

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework import exceptions

from accounts.authentication import ApiKeyAuthentication
from accounts.services import api_key_create, api_key_revoke, user_set_active, user_set_team
from licensing.services import license_remove
from tests.support.licenses import activate_test_license
from tests.support.server import running_server


def check(plaintext: str):
    request = RequestFactory().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return ApiKeyAuthentication(remember=True).authenticate(request)


@pytest.mark.django_db
def test_a_key_is_read_once_and_refused_as_soon_as_it_changes(admin_user, alice, team_b):
    _, admin_key = api_key_create(user=admin_user)
    check(admin_key)
    with CaptureQueriesContext(connection) as queries:
        user, _ = check(admin_key)
    assert user == admin_user and len(queries) == 0

    # The plugin ASGI path reads the generation with its in-flight slot (hosting.limits): no query either.
    client = Client(HTTP_AUTHORIZATION=f"Bearer {admin_key}")
    body = {"model": "absent", "prompt": "x"}
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            assert client.post("/v1/completions", body, content_type="application/json").status_code == 404
    assert len(queries) == 0

    alice_row, alice_key = api_key_create(user=alice)
    check(alice_key)
    with CaptureQueriesContext(connection) as queries:
        user, _ = check(alice_key)  # the license is kept too
    assert user.team_id == alice.team_id and len(queries) == 0

    user_set_team(user=alice, team=team_b)
    assert check(alice_key)[0].team_id == team_b.pk
    license_remove()
    with pytest.raises(exceptions.AuthenticationFailed, match="need an active Enterprise license"):
        check(alice_key)
    activate_test_license()
    assert check(alice_key)[0] == alice
    user_set_active(user=alice, active=False)
    with pytest.raises(exceptions.AuthenticationFailed, match="User deactivated"):
        check(alice_key)
    api_key_revoke(key=api_key_create(user=admin_user)[0])  # another key's change reads this one afresh too
    api_key_revoke(key=alice_row)
    with pytest.raises(exceptions.AuthenticationFailed, match="API key revoked"):
        check(alice_key)
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid API key"):
        check(admin_key[:-1] + ("A" if admin_key[-1] != "A" else "B"))  # a kept key still checks the secret


@pytest.mark.django_db(transaction=True)
def test_a_server_refuses_a_key_revoked_from_another_process_on_its_next_request(admin_user, alice):
    """The server keeps the keys it verified; `manage.py key_revoke`, a user's deactivation and the
    license's removal, made in this process, reach it through the generation (Redis, or a file)."""
    _, admin_key = api_key_create(user=admin_user)
    _, alice_key = api_key_create(user=alice)
    with running_server() as server:

        def answer(key: str, path: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"}
            if path == "/v1/models":
                return httpx.get(f"{server.url}{path}", headers=headers, timeout=10)
            body = {"model": "absent", "prompt": "x"}
            return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=10)

        def refusal(key: str, path: str) -> str | None:
            response = answer(key, path)
            if response.status_code == 401:
                return response.json()["detail"]
            # Past authentication: the model list, or the unknown model.
            assert response.status_code == (200 if path == "/v1/models" else 404), response.text
            return None

        paths = ("/v1/models", "/v1/completions")  # a DRF view, and the plugin ASGI app
        for _ in range(2):  # the second time from memory
            assert [refusal(key, path) for key in (admin_key, alice_key) for path in paths] == [None] * 4
        license_remove()
        assert {refusal(alice_key, path) for path in paths} == {
            "API keys of users other than the admin need an active Enterprise license (No license is active); "
            "ask your administrator to activate one"
        }
        assert {refusal(admin_key, path) for path in paths} == {None}
        activate_test_license()
        assert {refusal(alice_key, path) for path in paths} == {None}
        user_set_active(user=alice, active=False)
        assert {refusal(alice_key, path) for path in paths} == {"User deactivated"}
        call_command("key_revoke", admin_key.split(".")[0])
        assert {refusal(admin_key, path) for path in paths} == {"API key revoked"}
