from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditEntry, Team, User
from accounts.services import (
    api_key_create,
    team_create,
    team_delete,
    user_add,
    user_set_active,
    user_set_team,
)
from licensing.services import license_activate, license_remove
from refact_site.exceptions import ApplicationError
from tests.support.licenses import license_token

pytestmark = pytest.mark.django_db


def test_self_hosted_edition_refuses_users_but_gives_the_admin_keys(admin_user):
    with pytest.raises(ApplicationError, match="needs an active Enterprise license \\(No license is active\\)"):
        user_add(username="dave")
    with pytest.raises(ApplicationError, match="needs an active Enterprise license"):
        team_create(name="x")
    key, plaintext = api_key_create(user=admin_user, name="plugin")
    assert plaintext.startswith("rfx_") and not User.objects.filter(username="dave").exists()


def test_seats_are_enforced_and_deactivation_frees_one(admin_user):
    license_activate(token=license_token(seats=2), actor=admin_user)
    team = team_create(name="Core", actor=admin_user)
    first, key = user_add(username="u1", email="u1@example.com", team=team, actor=admin_user)
    assert key.startswith("rfx_") and first.team == team and not first.has_usable_password()
    user_add(username="u2", actor=admin_user)
    with pytest.raises(ApplicationError, match="All 2 licensed seats are in use") as caught:
        user_add(username="u3", actor=admin_user)
    assert caught.value.field == "username"
    assert not User.objects.filter(username="u3").exists()  # nothing half-written
    user_set_active(user=first, active=False, actor=admin_user)
    user_add(username="u3", actor=admin_user)
    with pytest.raises(ApplicationError, match="seats are in use"):
        user_set_active(user=first, active=True, actor=admin_user)


def test_bad_input_names_the_field(admin_user, enterprise_license):
    user_add(username="erin", actor=admin_user)
    for kwargs, field, words in [
        ({"username": ""}, "username", "1 to 150"),
        ({"username": "has space"}, "username", "letters, digits"),
        ({"username": "ERIN"}, "username", "already exists"),
        ({"username": "frank", "email": "nope"}, "email", "not a valid address"),
    ]:
        with pytest.raises(ApplicationError, match=words) as caught:
            user_add(actor=admin_user, **kwargs)
        assert caught.value.field == field
    team_create(name="Ops")
    with pytest.raises(ApplicationError, match="already exists"):
        team_create(name="ops")
    with pytest.raises(ApplicationError, match="cannot be deactivated"):
        user_set_active(user=admin_user, active=False)


def test_edition_switching_loses_nothing(admin_user, alice, bob, client_for, team_a):
    alice_client = client_for(alice)
    before = (User.objects.count(), Team.objects.count(), ApiKey.objects.count())
    license_remove(actor=admin_user)
    assert alice_client.get("/api/accounts/me/").status_code == 401
    with pytest.raises(ApplicationError, match="Enterprise license"):
        user_set_team(user=alice, team=None, actor=admin_user)
    assert (User.objects.count(), Team.objects.count(), ApiKey.objects.count()) == before
    license_activate(token=license_token(), actor=admin_user)
    assert alice_client.get("/api/accounts/me/").json()["team"] == "team-a"


def test_team_delete_keeps_members_and_refuses_teams_with_projects(admin_user, alice, team_a, team_b):
    from projects.models import Project

    Project.objects.create(name="p", team=team_b)
    with pytest.raises(ApplicationError, match="owns projects"):
        team_delete(team=team_b, actor=admin_user)
    team_delete(team=team_a, actor=admin_user)
    alice.refresh_from_db()
    assert alice.team is None and alice.is_active


def test_audit_rows_for_admin_actions(admin_user, enterprise_license):
    team = team_create(name="Blue", actor=admin_user)
    user, _ = user_add(username="gus", team=team, actor=admin_user)
    user_set_team(user=user, team=None, actor=admin_user)
    user_set_active(user=user, active=False, actor=admin_user)
    rows = list(AuditEntry.objects.order_by("id").values_list("action", "actor_name", "target_repr", "diff"))
    actions = [row[0] for row in rows]
    assert actions[-5:] == ["team.created", "user.added", "api_key.created", "user.team_changed", "user.deactivated"]
    assert rows[-2][3] == {"team": ["Blue", None]} and rows[-2][2] == "gus"
    assert all(row[1] == "admin" for row in rows[-5:])


def test_commands(admin_user, enterprise_license, capsys):
    call_command("user_add", "hank", "--team", "Green", "--email", "h@example.com")
    key = capsys.readouterr().out.strip()
    assert User.objects.get(username="hank").team.name == "Green"
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/accounts/me/").json()["username"] == "hank"
    with pytest.raises(CommandError, match="already exists"):
        call_command("user_add", "hank")
    call_command("key_create", "hank", "--name", "laptop")
    second = capsys.readouterr().out.strip()
    assert second.startswith("rfx_") and second != key
    call_command("key_revoke", key.split(".")[0])
    assert "revoked" in capsys.readouterr().out
    assert client.get("/api/accounts/me/").status_code == 401
    with pytest.raises(CommandError, match="No API key with id"):
        call_command("key_revoke", "rfx_0000000000000000")
    with pytest.raises(CommandError, match="No user"):
        call_command("key_create", "nobody")


def test_self_hosted_key_create_command_is_for_the_admin(admin_user, django_user_model, capsys):
    django_user_model.objects.create_user("left-over")
    call_command("key_create", "admin")
    assert capsys.readouterr().out.startswith("rfx_")
    with pytest.raises(CommandError, match="Enterprise license"):
        call_command("key_create", "left-over")
