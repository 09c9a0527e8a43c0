from __future__ import annotations

import re

import pytest

from accounts.models import ApiKey, AuditEntry, TeamPreference, User
from licensing.models import License
from tests.accounts.conftest import COMPLETION_MODEL
from tests.support.licenses import license_token

pytestmark = pytest.mark.django_db


def test_self_hosted_users_page_explains_the_license(admin_client):
    page = admin_client.get("/users/").content.decode()
    assert "Self-hosted edition" in page and "An Enterprise license enables users" in page
    assert "Add new user" not in page
    # The admin still gets plugin keys, shown once.
    admin = User.objects.get(username="admin")
    response = admin_client.post(f"/users/{admin.pk}/keys/", {"name": "vscode"})
    html = response.content.decode()
    plaintext = re.search(r'value="(rfx_[^"]+)"', html).group(1)
    assert "shown only once" in html and 'data-copy="#new-key-value"' in html
    assert ApiKey.objects.get(user=admin, name="vscode").key_id in plaintext
    # Gone on the next view of the page.
    assert plaintext not in admin_client.get("/users/").content.decode()
    response = admin_client.post("/users/add/", {"username": "dave"}, follow=True)
    assert "needs an active Enterprise license" in response.content.decode()


def test_enterprise_users_page_add_user_team_preferences_revoke(admin_client, enterprise_license, team_a, project_a):
    page = admin_client.get("/users/").content.decode()
    assert "Add new user" in page and "Team Preferences" in page and "0</strong> of 10 seats" in page
    response = admin_client.post("/users/add/", {"username": "jo", "email": "jo@example.com", "team": team_a.pk})
    assert response.status_code == 200
    plaintext = re.search(r'value="(rfx_[^"]+)"', response.content.decode()).group(1)
    jo = User.objects.get(username="jo")
    assert jo.team == team_a and jo.api_keys.get().key_id in plaintext

    bad = admin_client.post("/users/add/", {"username": "jo"}, follow=True).content.decode()
    assert "User &#x27;jo&#x27; already exists" in bad

    admin_client.post("/users/preferences/", {"team": team_a.pk, "completion_model": COMPLETION_MODEL})
    admin_client.post("/users/preferences/", {"team": team_a.pk, "project": project_a.pk, "completion_model": "nope"})
    assert list(TeamPreference.objects.values_list("completion_model", flat=True)) == [COMPLETION_MODEL]
    page = admin_client.get("/users/").content.decode()
    assert "Unknown model &#x27;nope&#x27;" in page and f"<code>{COMPLETION_MODEL}</code>" in page

    key = jo.api_keys.get()
    rotated = admin_client.post(f"/users/keys/{key.pk}/rotate/").content.decode()
    assert re.search(r'value="(rfx_[^"]+)"', rotated).group(1) != plaintext
    new_key = jo.api_keys.get(revoked_at__isnull=True)
    admin_client.post(f"/users/keys/{new_key.pk}/revoke/")
    admin_client.post(f"/users/{jo.pk}/active/", {"active": "0"})
    jo.refresh_from_db()
    assert not jo.is_active and not jo.api_keys.filter(revoked_at__isnull=True).exists()
    admin_client.post(f"/users/{jo.pk}/keys/", {"name": "ci", "expires_on": "2999-01-31"})
    assert jo.api_keys.get(name="ci").expires_at.year == 2999
    response = admin_client.post(f"/users/{jo.pk}/keys/", {"name": "x", "expires_on": "soon"}, follow=True)
    assert "Expiry &#x27;soon&#x27; is not a date" in response.content.decode()
    admin_client.post("/users/teams/", {"name": "Second"})
    assert "Second" in admin_client.get("/users/").content.decode()


def test_settings_license_section_activates_and_removes(admin_client, admin_user):
    page = admin_client.get("/settings/").content.decode()
    assert 'id="license"' in page and "Self-hosted" in page
    response = admin_client.post("/settings/license/activate/", {"token": "RFXL1.broken"}, follow=True)
    assert "License not activated: License token is damaged or was tampered with" in response.content.decode()
    response = admin_client.post(
        "/settings/license/activate/", {"token": license_token(customer="Page Ltd", seats=7, days=5)}, follow=True
    )
    html = response.content.decode()
    assert "License activated: Page Ltd, 7 seats" in html and "0 of 7 seats used" in html
    assert "The license expires in 4 days" in html  # the 14-day warning, for admins on every page
    assert "The license expires" in admin_client.get("/users/").content.decode()
    admin_client.post("/settings/license/remove/")
    assert License.objects.get().removed_at is not None
    page = admin_client.get("/settings/").content.decode()
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"license.activated", "license.removed"} <= actions
    assert "license.removed" in page  # the audit section lists it


def test_non_admins_get_no_admin_pages(client, alice):
    client.force_login(alice)
    assert client.get("/users/").status_code == 403
    assert client.post("/users/add/", {"username": "x"}).status_code == 403
    assert client.post("/settings/license/remove/").status_code == 302  # to the admin login
    settings_page = client.get("/settings/").content.decode()
    assert 'id="license"' not in settings_page and 'id="audit"' not in settings_page
