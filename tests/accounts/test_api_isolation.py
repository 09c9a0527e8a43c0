"""The cross-team matrix: admin, Alice (team A), Bob (team B), Carol (no team), over every accounts endpoint."""

from __future__ import annotations

import pytest

from accounts.models import ApiKey, AuditEntry, TeamPreference
from accounts.services import api_key_create, team_preference_set
from tests.accounts.conftest import COMPLETION_MODEL

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(admin_user, alice, bob, carol, team_a, team_b, project_a, project_b, client_for):
    pref_a = team_preference_set(team=team_a, completion_model=COMPLETION_MODEL, actor=admin_user)
    pref_b = team_preference_set(team=team_b, project=project_b, completion_model=COMPLETION_MODEL, actor=admin_user)
    keys = {user.username: api_key_create(user=user, name="spare")[0] for user in (admin_user, alice, bob, carol)}
    clients = {user.username: client_for(user) for user in (admin_user, alice, bob, carol)}
    users = {user.username: user for user in (admin_user, alice, bob, carol)}
    return {
        "clients": clients,
        "users": users,
        "keys": keys,
        "teams": {"a": team_a, "b": team_b},
        "prefs": {"a": pref_a, "b": pref_b},
    }


# Who may see which object (admin sees everything).
VISIBLE = {
    "alice": {"users": {"alice"}, "teams": {"a"}, "keys": {"alice"}, "prefs": {"a"}},
    "bob": {"users": {"bob"}, "teams": {"b"}, "keys": {"bob"}, "prefs": {"b"}},
    "carol": {"users": {"carol"}, "teams": set(), "keys": {"carol"}, "prefs": set()},
}


def object_urls(world) -> list[tuple[str, str, str]]:
    """(kind, name, url) for every object."""
    urls = [("users", name, f"/api/accounts/users/{user.pk}/") for name, user in world["users"].items()]
    urls += [("teams", name, f"/api/accounts/teams/{team.pk}/") for name, team in world["teams"].items()]
    urls += [("keys", name, f"/api/accounts/keys/{key.pk}/") for name, key in world["keys"].items()]
    urls += [("prefs", name, f"/api/accounts/preferences/{pref.pk}/") for name, pref in world["prefs"].items()]
    return urls


@pytest.mark.parametrize("viewer", ["alice", "bob", "carol"])
def test_no_read_write_or_existence_leak_across_teams(world, viewer):
    client = world["clients"][viewer]
    for kind, name, url in object_urls(world):
        visible = name in VISIBLE[viewer][kind]
        assert client.get(url).status_code == (200 if visible else 404), (viewer, url)
        if visible:
            continue
        # Writes to what one cannot see answer exactly like an id that does not exist.
        missing = url.rstrip("/").rsplit("/", 1)[0] + "/999999/"
        for method in ("get", "patch", "delete"):
            body = {} if method == "get" else {"data": {"name": "x", "team": None}, "format": "json"}
            response = getattr(client, method)(url, **body)
            nothing = getattr(client, method)(missing, **body)
            assert response.status_code in (404, 405), (viewer, method, url, response.status_code)
            assert (response.status_code, response.json()) == (nothing.status_code, nothing.json()), (viewer, url)
        if kind == "keys":
            assert client.post(f"{url}rotate/").status_code == 404
    # Nothing changed for anybody else.
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 0
    assert TeamPreference.objects.count() == 2


@pytest.mark.parametrize("viewer", ["alice", "bob", "carol"])
def test_lists_show_only_what_the_viewer_may_see(world, viewer):
    client = world["clients"][viewer]
    users = {row["username"] for row in client.get("/api/accounts/users/").json()["results"]}
    assert users == VISIBLE[viewer]["users"]
    teams = {row["name"] for row in client.get("/api/accounts/teams/").json()["results"]}
    assert teams == {world["teams"][t].name for t in VISIBLE[viewer]["teams"]}
    owners = {row["user"] for row in client.get("/api/accounts/keys/").json()["results"]}
    assert owners == {viewer}
    prefs = {row["team"]["name"] for row in client.get("/api/accounts/preferences/").json()["results"]}
    assert prefs == {world["teams"][t].name for t in VISIBLE[viewer]["prefs"]}
    assert client.get("/api/accounts/audit/").status_code == 403


@pytest.mark.parametrize("viewer", ["alice", "bob", "carol"])
def test_non_admins_cannot_administer_even_their_own_team(world, viewer):
    client = world["clients"][viewer]
    me = world["users"][viewer]
    assert client.post("/api/accounts/users/", {"username": "mallory"}, format="json").status_code == 403
    assert client.patch(f"/api/accounts/users/{me.pk}/", {"team": None}, format="json").status_code == 403
    assert client.post("/api/accounts/teams/", {"name": "mine"}, format="json").status_code == 403
    other_team = world["teams"]["b" if viewer == "alice" else "a"]
    response = client.put("/api/accounts/preferences/", {"team": other_team.pk, "completion_model": ""}, format="json")
    assert response.status_code == 404
    if me.team_id:
        response = client.put("/api/accounts/preferences/", {"team": me.team_id, "completion_model": ""}, format="json")
        assert response.status_code == 403
    # Keys for someone else: 404 when out of sight.
    stranger = world["users"]["bob" if viewer != "bob" else "alice"]
    assert client.post("/api/accounts/keys/", {"user": stranger.pk}, format="json").status_code == 404
    # Their own keys they manage themselves.
    created = client.post("/api/accounts/keys/", {"name": "second"}, format="json")
    assert created.status_code == 201 and created.json()["key"].startswith("rfx_")
    assert client.delete(f"/api/accounts/keys/{created.json()['id']}/").json()["revoked"] is True


def test_admin_sees_and_manages_everything(world):
    client = world["clients"]["admin"]
    assert len(client.get("/api/accounts/users/").json()["results"]) == 4
    assert len(client.get("/api/accounts/keys/").json()["results"]) == 8
    bob = world["users"]["bob"]
    assert len(client.get(f"/api/accounts/keys/?user={bob.pk}").json()["results"]) == 2
    response = client.patch(f"/api/accounts/users/{bob.pk}/", {"team": world["teams"]["a"].pk}, format="json")
    assert response.status_code == 200 and response.json()["team"]["name"] == "team-a"
    response = client.patch(f"/api/accounts/users/{bob.pk}/", {"team": 999999}, format="json")
    assert response.status_code == 404 and response.json()["field"] == "team"
    response = client.put(
        "/api/accounts/preferences/",
        {"team": world["teams"]["a"].pk, "completion_model": "no-such-model"},
        format="json",
    )
    assert response.status_code == 400 and response.json() == {
        "detail": "Unknown model 'no-such-model'",
        "field": "completion_model",
    }
    entries = client.get("/api/accounts/audit/").json()["results"]
    assert entries[0]["action"] == "user.team_changed" and entries[0]["actor_name"] == "admin"
    assert AuditEntry.objects.filter(action="user.team_changed").count() == 1


def test_schema_covers_the_accounts_api(admin_client):
    schema = admin_client.get("/api/schema/").content.decode()
    for path in (
        "/api/accounts/users/",
        "/api/accounts/keys/{id}/rotate/",
        "/api/accounts/preferences/",
        "/api/licensing/license/",
        "bearerFormat",
    ):
        assert path in schema


def test_a_refused_patch_changes_nothing(world):
    client = world["clients"]["admin"]
    bob = world["users"]["bob"]
    response = client.patch(
        f"/api/accounts/users/{bob.pk}/", {"email": "new@example.com", "team": 999999}, format="json"
    )
    assert response.status_code == 404 and response.json()["field"] == "team"
    bob.refresh_from_db()
    assert bob.email == "bob@example.com"
