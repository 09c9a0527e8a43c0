from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditEntry
from accounts.services import api_key_create, api_key_revoke, api_key_rotate, audit_record

pytestmark = pytest.mark.django_db

URL = "/api/accounts/me/"


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_key_format_and_only_a_keyed_hash_is_stored(admin_user):
    key, plaintext = api_key_create(user=admin_user, name="laptop")
    assert plaintext.startswith("rfx_") and plaintext.count(".") == 1
    key_id, secret = plaintext[4:].split(".")
    assert key.key_id == key_id and len(secret) >= 40  # 256 bits of secret
    assert key.last4 == secret[-4:] and key.name == "laptop"
    assert key.display == f"rfx_{key_id}.…{secret[-4:]}"
    # Scan every column of the table: the secret appears nowhere.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(ApiKey._meta.db_table)}")  # noqa: S608
        dump = repr(cursor.fetchall())
    assert secret not in dump and plaintext not in dump
    assert key.secret_hash not in (secret, plaintext) and len(key.secret_hash) == 64
    # Two keys never share a secret.
    assert api_key_create(user=admin_user)[1] != plaintext


def test_bearer_key_authenticates_and_last_used_is_throttled(admin_user):
    key, plaintext = api_key_create(user=admin_user)
    assert bearer(plaintext).get(URL).status_code == 200
    key.refresh_from_db()
    first = key.last_used
    assert first is not None
    bearer(plaintext).get(URL)
    key.refresh_from_db()
    assert key.last_used == first  # at most one write a minute
    ApiKey.objects.filter(pk=key.pk).update(last_used=first - timedelta(minutes=2))
    bearer(plaintext).get(URL)
    key.refresh_from_db()
    assert key.last_used > first - timedelta(minutes=1)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), "Invalid API key"),
        (lambda k: "rfx_0123456789abcdef." + k.split(".")[1], "Invalid API key"),
        (lambda k: "garbage", "Invalid API key"),
    ],
)
def test_wrong_keys_get_401_json(admin_user, mangle, message):
    _, plaintext = api_key_create(user=admin_user)
    response = bearer(mangle(plaintext)).get(URL)
    assert response.status_code == 401
    assert response.json() == {"detail": message}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_expired_and_deactivated_get_401_with_the_reason(admin_user, django_user_model):
    key, plaintext = api_key_create(user=admin_user)
    api_key_revoke(key=key, actor=admin_user)
    assert bearer(plaintext).get(URL).json() == {"detail": "API key revoked"}

    key, plaintext = api_key_create(user=admin_user, expires_at=timezone.now() + timedelta(hours=1))
    assert bearer(plaintext).get(URL).status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(plaintext).get(URL)
    assert response.status_code == 401 and response.json() == {"detail": "API key expired"}

    _, plaintext = api_key_create(user=admin_user)
    django_user_model.objects.filter(pk=admin_user.pk).update(is_active=False)
    response = bearer(plaintext).get(URL)
    assert response.status_code == 401 and response.json() == {"detail": "User deactivated"}


def test_no_credentials_is_401_and_session_auth_still_works(admin_client):
    assert APIClient().get(URL).status_code == 401
    assert admin_client.get(URL).status_code == 200


def test_rotate_revokes_the_old_key_and_keeps_name(admin_user):
    key, old = api_key_create(user=admin_user, name="ci")
    new_key, new = api_key_rotate(key=key, actor=admin_user)
    assert new_key.name == "ci" and new != old
    assert bearer(old).get(URL).status_code == 401
    assert bearer(new).get(URL).status_code == 200


def rest_call(client: APIClient, address: str) -> int:
    return client.get(URL, REMOTE_ADDR=address).status_code


def plugin_call(client: APIClient, address: str) -> int:
    """A completion: its counters are read with the in-flight slot (`hosting.limits`), not by the view."""
    body = {"model": "absent", "prompt": "x"}
    status = client.post("/v1/completions", body, format="json", REMOTE_ADDR=address).status_code
    return 200 if status == 404 else status  # past authentication: the unknown model


@pytest.mark.parametrize("call", [rest_call, plugin_call])
@override_settings(REFACT_AUTH_FAILURE_LIMIT=3, REFACT_AUTH_FAILURE_WINDOW=60)
def test_failed_attempts_are_rate_limited_per_client_and_per_key_id(admin_user, clean_cache, call):
    key, plaintext = api_key_create(user=admin_user)
    wrong = plaintext[:-4] + "zzzz" if not plaintext.endswith("zzzz") else plaintext[:-4] + "yyyy"
    assert call(bearer(plaintext), "10.0.0.1") == 200
    for _ in range(3):
        assert call(bearer(wrong), "10.0.0.1") == 401
    # This client is now refused, even with the right key.
    response = bearer(plaintext).get(URL, REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 429 and "Too many failed" in response.json()["detail"]
    assert call(bearer(plaintext), "10.0.0.1") == 429
    # Another client guessing the same key id is refused too (per key id).
    assert call(bearer(wrong), "10.0.0.2") == 429
    # Another client with another key id is unaffected.
    _, other = api_key_create(user=admin_user)
    assert call(bearer(other), "10.0.0.3") == 200


def test_audit_rows_are_append_only(admin_user):
    key, _ = api_key_create(user=admin_user, name="x", actor=admin_user)
    api_key_revoke(key=key, actor=admin_user)
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "actor_name", "target_id"))
    assert actions == [("api_key.created", "admin", str(key.pk)), ("api_key.revoked", "admin", str(key.pk))]
    entry = audit_record(actor=None, action="test.thing", target="free text", diff={"a": 1})
    assert entry.actor_name == "system" and entry.target_repr == "free text"
    entry.action = "changed"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.update(action="x")


def test_admin_shows_keys_without_secrets_and_audit_is_read_only(admin_client, admin_user):
    key, plaintext = api_key_create(user=admin_user)
    page = admin_client.get("/admin/accounts/apikey/").content.decode()
    assert key.last4 in page and plaintext.split(".")[1] not in page and key.secret_hash not in page
    entry = AuditEntry.objects.first()
    assert admin_client.get(f"/admin/accounts/auditentry/{entry.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/accounts/auditentry/{entry.pk}/delete/").status_code == 403


def test_personas(alice, bob, carol, team_a, team_b, api_key_for):
    assert alice.team == team_a and bob.team == team_b and carol.team is None
    assert bearer(api_key_for(alice)).get(URL).status_code == 200
