from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditEntry, Team, User
from licensing import tokens
from licensing.models import License
from licensing.selectors import edition, license_active, license_state
from licensing.services import license_activate, license_remove
from refact_site.exceptions import ApplicationError
from tests.support.licenses import PRIVATE_KEY, TEST_KID, license_token

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def trusted() -> dict:
    return {TEST_KID: PRIVATE_KEY.public_key()}


def reencode(token: str, **changes) -> str:
    """Edit the payload and recompute the checksum (a deliberate forgery, not transport damage)."""
    header, body, signature, _ = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(changes)
    body = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}.{tokens._checksum(f'{header}.{body}.{signature}')}"


def test_round_trip_and_every_refusal_says_why():
    token = license_token(customer="ACME", seats=5, days=30, now=NOW)
    payload = tokens.verify(token, trusted=trusted(), now=NOW + timedelta(days=1))
    assert (payload.customer, payload.seats, payload.kid) == ("ACME", 5, TEST_KID)
    assert payload.exp == NOW + timedelta(days=30)

    def refusal(candidate: str, now: datetime = NOW + timedelta(days=1)) -> tokens.LicenseError:
        with pytest.raises(tokens.LicenseError) as caught:
            tokens.verify(candidate, trusted=trusted(), now=now)
        return caught.value

    # Transport damage or a hand edit of any part: tampered.
    header, body, signature, checksum = token.split(".")
    edited = f"{header}.{body[:-2]}xx.{signature}.{checksum}"
    assert refusal(edited).reason == "tampered" and "tampered" in str(refusal(edited))
    assert refusal("not a token").reason == "tampered"
    # Seats raised with a recomputed checksum: the signature gives it away.
    forged = refusal(reencode(token, seats=500))
    assert forged.reason == "bad_signature" and "not valid for key id 'tests'" in str(forged)
    # Signed by another key claiming our key id.
    other = tokens.issue(private_key=Ed25519PrivateKey.generate(), kid=TEST_KID, customer="X", seats=1, days=9, now=NOW)
    assert refusal(other).reason == "bad_signature"
    # A key id the server does not know.
    unknown = tokens.issue(private_key=PRIVATE_KEY, kid="elsewhere", customer="X", seats=1, days=9, now=NOW)
    error = refusal(unknown)
    assert error.reason == "unknown_key" and "'elsewhere'" in str(error) and "REFACT_LICENSE_PUBLIC_KEYS" in str(error)
    # Dates.
    error = refusal(license_token(now=NOW, not_before=NOW + timedelta(days=3)))
    assert error.reason == "not_yet_valid" and "2026-06-04" in str(error)
    error = refusal(token, now=NOW + timedelta(days=30))
    assert error.reason == "expired" and str(error) == "License expired on 2026-07-01T00:00:00Z"


def test_public_key_parsing_names_the_bad_entry():
    good = tokens.public_key_b64(PRIVATE_KEY)
    assert set(tokens.parse_public_keys(f"a:{good}, b:{good}")) == {"a", "b"}
    for value, words in [("nokid", "expected kid:"), ("a:!!!", "not valid base64"), ("a:AAAA", "expected 32 bytes")]:
        with pytest.raises(ValueError, match=words):
            tokens.parse_public_keys(value)
    # The shipped default is a valid key and no private key is in the repository.
    assert tokens.parse_public_keys(tokens.PRODUCT_PUBLIC_KEYS)


@pytest.mark.django_db
def test_activation_status_warning_and_removal_keep_data(admin_user, alice, api_key_for):
    key = api_key_for(alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert license_active() and edition() == "enterprise"
    assert client.get("/api/accounts/me/").status_code == 200

    license_remove(actor=admin_user)
    assert edition() == "self-hosted"
    response = client.get("/api/accounts/me/")
    assert response.status_code == 401
    assert "need an active Enterprise license (No license is active)" in response.json()["detail"]
    # Nothing was deleted: the user, the team and the key are all still there.
    assert User.objects.filter(username="alice", team__name="team-a").exists()
    assert ApiKey.objects.filter(user=alice, revoked_at__isnull=True).count() == 1

    license_activate(token=license_token(days=10), actor=admin_user)
    assert client.get("/api/accounts/me/").status_code == 200
    state = license_state()
    assert state.warning and "expires in 9 days" in state.warning

    actions = list(AuditEntry.objects.filter(action__startswith="license.").values_list("action", flat=True))
    assert sorted(actions) == ["license.activated", "license.activated", "license.removed"]


@pytest.mark.django_db
def test_expiry_disables_non_admin_keys_but_not_the_admins(admin_user, alice, api_key_for):
    alice_key, admin_key = api_key_for(alice), api_key_for(admin_user)
    # Time passes: the activated license's token is now past its expiry.
    expired = license_token(days=365, now=datetime.now(UTC) - timedelta(days=400))
    License.objects.filter(removed_at__isnull=True).update(token=expired)
    assert not license_active()
    response = APIClient(HTTP_AUTHORIZATION=f"Bearer {alice_key}").get("/api/accounts/me/")
    assert response.status_code == 401 and "License expired on" in response.json()["detail"]
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {admin_key}").get("/api/accounts/me/").status_code == 200
    # A row edited to look valid does not help: dates come from the signed token.
    License.objects.update(expires_at=datetime.now(UTC) + timedelta(days=99))
    assert not license_active()


@pytest.mark.django_db
def test_rest_activation_and_refusals(admin_client, admin_user):
    response = admin_client.post("/api/licensing/license/", {"token": "garbage"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["field"] == "token" and "tampered" in response.json()["detail"]
    token = license_token(customer="REST Co", seats=3)
    response = admin_client.post("/api/licensing/license/", {"token": token}, content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["edition"] == "enterprise" and body["customer"] == "REST Co" and body["seats"] == 3
    assert admin_client.get("/api/licensing/edition/").json() == {"edition": "enterprise"}
    assert admin_client.delete("/api/licensing/license/").status_code == 204
    assert admin_client.get("/api/licensing/license/").json()["edition"] == "self-hosted"
    assert admin_client.delete("/api/licensing/license/").status_code == 404


@pytest.mark.django_db
def test_non_admins_cannot_touch_the_license(alice, api_key_for):
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {api_key_for(alice)}")
    assert client.get("/api/licensing/license/").status_code == 403
    assert client.post("/api/licensing/license/", {"token": license_token()}).status_code == 403
    assert client.get("/api/licensing/edition/").json() == {"edition": "enterprise"}


@pytest.mark.django_db
def test_commands_issue_activate_status(tmp_path, capsys, django_user_model):
    pem = tmp_path / "vendor.pem"
    pem.write_bytes(
        PRIVATE_KEY.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    call_command(
        "license_issue",
        "--private-key",
        str(pem),
        "--kid",
        TEST_KID,
        "--customer",
        "Cmd Inc",
        "--seats",
        "2",
        "--days",
        "30",
    )
    token = capsys.readouterr().out.strip()
    with pytest.raises(CommandError, match="--seats: must be at least 1"):
        call_command(
            "license_issue", "--private-key", str(pem), "--kid", "k", "--customer", "c", "--seats", "0", "--days", "3"
        )
    with pytest.raises(CommandError, match="tampered"):
        call_command("license_activate", token[:-3])
    call_command("license_activate", token)
    assert "Cmd Inc, 2 seats" in capsys.readouterr().out
    django_user_model.objects.create_user("u1", team=Team.objects.create(name="t"))
    call_command("license_status")
    out = capsys.readouterr().out
    assert "Edition: Enterprise" in out and "Customer: Cmd Inc" in out and "Seats: 1 used of 2" in out
    assert "Warning:" not in out


@pytest.mark.django_db
def test_activation_service_refuses_empty_and_unknown_keys():
    with pytest.raises(ApplicationError, match="required"):
        license_activate(token="  ")
    unknown = tokens.issue(private_key=Ed25519PrivateKey.generate(), kid="nope", customer="X", seats=1, days=9)
    with pytest.raises(ApplicationError, match="does not trust"):
        license_activate(token=unknown)
    assert not License.objects.exists()
