"""The admin console goes through the same services (validation, key generation, file removal)."""

from __future__ import annotations

from projects.models import KnownHost, Project, SshKey


def test_admin_creates_projects_and_keys(admin_client) -> None:
    response = admin_client.post(
        "/admin/projects/project/add/",
        {
            "name": "from-admin",
            "team": "",
            "include_masks": "",
            "exclude_masks": "",
            "type_selection": "null",
            "sources-TOTAL_FORMS": "0",
            "sources-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert Project.objects.filter(name="from-admin").exists()
    response = admin_client.post("/admin/projects/sshkey/add/", {"name": "deploy", "team": ""})
    assert response.status_code == 302
    key = SshKey.objects.get()
    assert key.public_key.startswith("ssh-ed25519 ") and key.fingerprint.startswith("SHA256:")
    for page in ("project", "source", "sshkey", "knownhost", "scan"):
        assert admin_client.get(f"/admin/projects/{page}/").status_code == 200
    host = KnownHost.objects.create(host="git.example.com", lines="git.example.com ssh-ed25519 AAAA")
    admin_client.post(f"/admin/projects/knownhost/{host.pk}/delete/", {"post": "yes"})
    assert not KnownHost.objects.exists()
