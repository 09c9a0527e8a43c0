"""Hostile credentials: malformed, wrong, revoked and expired API keys on every kind of endpoint; another
team's objects on every operation of the schema; forged, expired, huge and garbage license tokens.

tests/accounts/test_api_keys.py has the key format and the basic refusals on the REST API, and
tests/licensing/test_licenses.py the refusals of the token parser; this file takes them to the edges
and through the doors an attacker uses.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from accounts.models import ApiKey, Team, TeamPreference, User
from licensing import tokens
from licensing.models import License
from tests.security.conftest import bearer
from tests.support.licenses import PRIVATE_KEY, TEST_KID, license_token

# One of each door: the REST API (DRF), the plugin API's async proxy, the plugin API's DRF views.
DOORS = [("get", "/api/projects/"), ("post", "/v1/completions"), ("get", "/refact-caps")]


def call(client, method: str, path: str, headers: dict[str, str]):
    if method == "post":
        return client.post(path, data="{}", content_type="application/json", **headers)
    return client.get(path, **headers)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer rfx_",
        "Bearer rfx_.",
        "Bearer rfx_0000000000000000.",
        "Bearer rfx_' OR '1'='1.x",
        f"Bearer rfx_{'a' * 16}.{'b' * 43}",
        "Bearer " + "x" * 16_000,
        "Bearer rfx_\xff\xfe.\xfa",  # bytes that are not UTF-8 (headers arrive as latin-1)
        "Bearer \x00",
        "Basic YWRtaW46YWRtaW4=",
    ],
)
@pytest.mark.parametrize(("method", "path"), DOORS)
def test_malformed_and_unknown_keys_are_401_on_every_door(client, admin_user, method, path, authorization) -> None:
    response = call(client, method, path, {"HTTP_AUTHORIZATION": authorization})
    assert response.status_code == 401, (authorization[:40], response.status_code, response.content[:200])
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


@pytest.fixture
def keys(admin_user, alice, api_key_for) -> dict[str, str]:
    """Keys in every state that must be refused, each with the reason the holder is told."""
    from accounts.services import api_key_create, api_key_revoke

    valid = api_key_for(alice, "valid")
    key_id, secret = valid.removeprefix("rfx_").split(".")
    revoked_row, revoked = api_key_create(user=alice, name="revoked")
    api_key_revoke(key=revoked_row)
    expired_row, expired = api_key_create(user=alice, name="expired", expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.filter(pk=expired_row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    mallory = User.objects.create_user("mallory", password="mallory-password-1", team=alice.team)
    _, deactivated = api_key_create(user=mallory, name="deactivated")
    mallory.is_active = False
    mallory.save()
    other_secret = api_key_for(admin_user, "other").split(".")[1]
    return {
        "valid": valid,
        "wrong secret": f"rfx_{key_id}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",
        "another key's secret": f"rfx_{key_id}.{other_secret}",
        "revoked": revoked,
        "expired": expired,
        "deactivated": deactivated,
    }


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("wrong secret", "Invalid API key"),
        ("another key's secret", "Invalid API key"),
        ("revoked", "API key revoked"),
        ("expired", "API key expired"),
        ("deactivated", "User deactivated"),
    ],
)
@pytest.mark.parametrize(("method", "path"), DOORS)
def test_refused_keys_are_401_with_the_reason_on_every_door(client, keys, method, path, state, reason) -> None:
    response = call(client, method, path, bearer(keys[state]))
    assert response.status_code == 401, response.content[:200]
    assert response.json()["detail"] == reason
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert call(client, method, path, bearer(keys["valid"])).status_code != 401


@pytest.mark.parametrize(("method", "path"), DOORS)
def test_a_team_members_key_stops_working_without_a_license(client, keys, method, path) -> None:
    from licensing.services import license_remove

    license_remove()
    response = call(client, method, path, bearer(keys["valid"]))
    assert response.status_code == 401 and "Enterprise license" in response.json()["detail"]


# --- another team's objects ------------------------------------------------------------------


def schema_operations_with_ids() -> list[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        if "{" in path and not path.startswith("/tokenizer/")  # tokenizers are public to every user
        for method in methods
        if method in ("get", "post", "put", "patch", "delete")
    )


@pytest.fixture
def alices_world(alice, api_key_for, data_dir, tiny_model_registered) -> dict[str, Any]:
    from finetune.models import FinetuneRun
    from projects import services as projects

    project = projects.project_create(name="alice-secret", team=alice.team)
    source = projects.source_add_upload(project=project, file_name="secret.py", stream=_stream(b"KEY = 1\n"))
    ssh_key = projects.ssh_key_create(name="alice-deploy", team=alice.team)
    run = FinetuneRun.objects.create(project=project, team=alice.team, base_model="tiny-test", name="alice-run")
    preference = TeamPreference.objects.create(team=alice.team, completion_model="tiny-test")
    api_key_for(alice, "alice-key")
    key = ApiKey.objects.get(user=alice, name="alice-key")
    values = {
        "project_id": project.pk,
        "source_id": source.pk,
        "key_id": ssh_key.pk,
        "run_id": run.pk,
        "model": "tiny-test",
        "name": "ckpt1",
    }
    ids = {
        "/api/accounts/keys/": key.pk,
        "/api/accounts/preferences/": preference.pk,
        "/api/accounts/teams/": alice.team.pk,
        "/api/accounts/users/": alice.pk,
        "/loras/": 1,
    }
    return {"values": values, "ids": ids, "snapshot": snapshot(alice)}


@pytest.fixture
def tiny_model_registered(db):
    from pathlib import Path

    from hosting.services import tiny_model_register

    return tiny_model_register(name="tiny-test", weights=Path("models/tiny-test"), parameters=0)


def _stream(data: bytes):
    import io

    return io.BytesIO(data)


def snapshot(alice: User) -> dict[str, Any]:
    """What Bob must not be able to change: every row of Alice's team, as plain values."""
    from finetune.models import FinetuneRun
    from projects.models import Project, Source, SshKey

    alice.refresh_from_db()
    return {
        "user": (alice.username, alice.is_active, alice.team_id, alice.is_staff),
        "team": list(Team.objects.filter(pk=alice.team_id).values_list("name", flat=True)),
        "keys": list(ApiKey.objects.filter(user=alice).order_by("pk").values_list("name", "revoked_at")),
        "preferences": list(TeamPreference.objects.filter(team=alice.team).values_list("completion_model", flat=True)),
        "projects": list(Project.objects.filter(team=alice.team).values_list("name", "include_masks")),
        "sources": list(Source.objects.filter(project__team=alice.team).values_list("name", "is_test")),
        "ssh_keys": list(SshKey.objects.filter(team=alice.team).values_list("name", flat=True)),
        "runs": list(FinetuneRun.objects.filter(project__team=alice.team).values_list("name", "status")),
    }


def fill(template: str, world: dict[str, Any]) -> str:
    path = template
    for prefix, value in world["ids"].items():
        if prefix in path:
            path = path.replace(prefix + "{id}", f"{prefix}{value}")
    for name, value in world["values"].items():
        path = path.replace("{" + name + "}", str(value))
    assert "{" not in path, path
    return path


HIJACK = {
    "name": "stolen",
    "is_test": True,
    "completion_model": "tiny-test",
    "team": None,
    "is_active": False,
    "include_masks": "*",
    "type_selection": [],
    "kind": "git",
    "url": "https://example.com/x.git",
}


@pytest.mark.parametrize(("method", "template"), schema_operations_with_ids())
def test_another_teams_objects_are_404_or_403_and_unchanged(client, alices_world, bob, api_key_for, method, template):
    path = fill(template, alices_world)
    send = getattr(client, method.lower())
    if method in ("POST", "PUT", "PATCH"):
        response = send(path, data=json.dumps(HIJACK), content_type="application/json", **bearer(api_key_for(bob)))
    else:
        response = send(path, **bearer(api_key_for(bob)))
    assert response.status_code in (403, 404), (method, path, response.status_code, response.content[:200])
    # Not even the object's name comes back in the refusal.
    assert b"alice" not in response.content.lower()
    alice = User.objects.get(username="alice")
    assert snapshot(alice) == alices_world["snapshot"]


# --- license tokens --------------------------------------------------------------------------


def forge(token: str, mutate) -> str:
    """Rewrite the payload and recompute the checksum: a deliberate forgery, not transport damage."""
    header, body, signature, _ = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw = mutate(data)
    body = base64.urlsafe_b64encode(raw if isinstance(raw, bytes) else json.dumps(raw).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}.{tokens._checksum(f'{header}.{body}.{signature}')}"


def hostile_tokens() -> list[tuple[str, str, str]]:
    good = license_token(customer="Forger", seats=5, days=30)
    header, body, signature, checksum = good.split(".")
    now = timezone.now()
    return [
        ("seats raised", forge(good, lambda d: {**d, "seats": 5000}), "bad_signature"),
        ("expiry moved", forge(good, lambda d: {**d, "exp": "2999-01-01T00:00:00Z"}), "bad_signature"),
        ("kid swapped", forge(good, lambda d: {**d, "kid": "refact-2026"}), "unknown_key"),
        ("unknown kid", forge(good, lambda d: {**d, "kid": "nobody"}), "unknown_key"),
        (
            "signed by another key",
            tokens.issue(private_key=Ed25519PrivateKey.generate(), kid=TEST_KID, customer="X", seats=1, days=9),
            "bad_signature",
        ),
        ("expired", license_token(days=1, now=now - timedelta(days=2)), "expired"),
        ("not yet valid", license_token(not_before=now + timedelta(days=2)), "not_yet_valid"),
        ("signature of another token", f"{header}.{body}.{license_token().split('.')[2]}.{checksum}", "tampered"),
        ("damaged", good[:50] + ("A" if good[50] != "A" else "B") + good[51:], "tampered"),
        ("truncated", good[: len(good) // 2], "tampered"),
        ("five parts", good + ".extra", "tampered"),
        ("huge", "RFXL1." + "A" * 1_000_000 + ".sig.sum", "tampered"),
        ("garbage", "\x01\x02 ☃ \U0001f600 \u202e", "tampered"),
        ("dots", "...", "tampered"),
        ("non-ASCII checksum", f"{header}.{body}.{signature}.é", "tampered"),
        ("seats Infinity", forge(good, lambda d: json.dumps({**d, "seats": 1e999}).encode()), "tampered"),
        ("seats negative", forge(good, lambda d: {**d, "seats": -5}), "tampered"),
        ("seats text", forge(good, lambda d: {**d, "seats": "5"}), "tampered"),
        ("payload nested deep", forge(good, lambda d: b"[" * 50_000 + b"]" * 50_000), "tampered"),
        ("payload a list", forge(good, lambda d: [d]), "tampered"),
        ("year one at +23:59", forge(good, lambda d: {**d, "nbf": "0001-01-01T00:00:00+23:59"}), "tampered"),
        ("year 9999 at -23:59", forge(good, lambda d: {**d, "exp": "9999-12-31T23:59:59-23:59"}), "tampered"),
        ("naive time", forge(good, lambda d: {**d, "exp": "2999-01-01T00:00:00"}), "tampered"),
        ("time a number", forge(good, lambda d: {**d, "iat": 12345}), "tampered"),
    ]


@pytest.mark.parametrize(("name", "token", "reason"), hostile_tokens(), ids=[case[0] for case in hostile_tokens()])
def test_hostile_license_tokens_are_400_with_the_reason_and_change_nothing(
    client, admin_user, api_key_for, enterprise_license, name, token, reason
) -> None:
    before = list(License.objects.values_list("pk", "removed_at"))
    response = client.post(
        "/api/licensing/license/",
        data=json.dumps({"token": token}),
        content_type="application/json",
        **bearer(api_key_for(admin_user)),
    )
    assert response.status_code == 400, (name, response.status_code, response.content[:300])
    body = response.json()
    assert body["field"] == "token" and body["reason"] == reason, body
    assert list(License.objects.values_list("pk", "removed_at")) == before  # the active license stays


def test_the_product_key_is_not_trusted_in_tests_and_a_token_for_it_is_refused(admin_user) -> None:
    # A token claiming the product's key id cannot be made without the product's private key.
    forged = tokens.issue(private_key=PRIVATE_KEY, kid="refact-2026", customer="X", seats=1, days=9)
    with pytest.raises(tokens.LicenseError) as caught:
        tokens.verify(forged, trusted=tokens.parse_public_keys(tokens.PRODUCT_PUBLIC_KEYS))
    assert caught.value.reason == "bad_signature"


def test_another_teams_ssh_key_cannot_be_named_in_a_source(client, alice, bob, api_key_for, data_dir) -> None:
    from projects import services as projects
    from projects.models import Source

    alices_key = projects.ssh_key_create(name="alice-deploy", team=alice.team)
    bobs_project = projects.project_create(name="bob-project", team=bob.team)
    response = client.post(
        f"/api/projects/{bobs_project.pk}/sources/",
        data=json.dumps({"kind": "git", "url": "git@git.invalid:org/repo.git", "ssh_key": alices_key.pk}),
        content_type="application/json",
        **bearer(api_key_for(bob)),
    )
    assert response.status_code == 404 and response.json()["field"] == "ssh_key"
    assert not Source.objects.exists()
    # The service itself refuses too (the admin, the pages and manage.py go through it).
    from refact_site.exceptions import ApplicationError

    with pytest.raises(ApplicationError, match="no such SSH key"):
        projects.source_add_git(project=bobs_project, url="git@git.invalid:org/repo.git", ssh_key=alices_key)


def test_a_spoofed_forwarded_for_does_not_reset_the_failure_limit(client, admin_user, settings, clean_cache) -> None:
    """Without REFACT_TRUST_PROXY_HEADERS, X-Forwarded-For is the client's own claim and is ignored."""
    settings.REFACT_AUTH_FAILURE_LIMIT = 3
    assert settings.REFACT_TRUST_PROXY_HEADERS is False
    statuses = [
        client.get(
            "/api/projects/",
            HTTP_AUTHORIZATION=f"Bearer rfx_{index:016x}.wrong",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{index}",
        ).status_code
        for index in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
