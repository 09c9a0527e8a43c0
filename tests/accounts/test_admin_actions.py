"""Django admin actions on users and keys go through the services (edition, seats, audit)."""

from __future__ import annotations

from accounts.models import ApiKey, AuditEntry


def test_deactivate_and_reactivate_users_from_the_admin(admin_client, admin_user, alice):
    response = admin_client.post(
        "/admin/accounts/user/",
        {"action": "deactivate_users", "_selected_action": [alice.pk, admin_user.pk]},
        follow=True,
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    admin_user.refresh_from_db()
    assert not alice.is_active and admin_user.is_active
    page = response.content.decode()
    assert "Deactivated 1 user(s)." in page and "The admin cannot be deactivated" in page
    assert AuditEntry.objects.filter(action="user.deactivated", target_id=str(alice.pk)).exists()

    admin_client.post("/admin/accounts/user/", {"action": "reactivate_users", "_selected_action": [alice.pk]})
    alice.refresh_from_db()
    assert alice.is_active


def test_revoke_keys_from_the_admin(admin_client, alice, api_key_for, client):
    plaintext = api_key_for(alice)
    key = ApiKey.objects.get(user=alice)
    assert client.get("/api/accounts/keys/", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    response = admin_client.post(
        "/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=True
    )
    assert "Revoked 1 key(s)." in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert client.get("/api/accounts/keys/", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 401
    assert AuditEntry.objects.filter(action="api_key.revoked").count() == 1
