"""Projects and Sources pages, through the test client with CSRF enforced."""

from __future__ import annotations

import io

import pytest
from django.test import Client

from projects import services
from projects.models import Project, Source, SshKey
from projects.scanning import scan_run


@pytest.fixture
def team_users(django_user_model):
    from accounts.models import Team

    red, blue = Team.objects.create(name="red"), Team.objects.create(name="blue")
    alice = django_user_model.objects.create_user("alice", password="alice-password-1", team=red)
    bob = django_user_model.objects.create_user("bob", password="bob-password-1", team=blue)
    return alice, bob


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/projects/?all")  # sets the CSRF cookie
    return client


def post(client: Client, url: str, data: dict | None = None, **extra):
    data = dict(data or {})
    data["csrfmiddlewaretoken"] = client.cookies["csrftoken"].value
    return client.post(url, data, **extra)


def test_empty_state_create_and_project_page(team_users) -> None:
    alice, _ = team_users
    client = csrf_client(alice)
    page = client.get("/projects/")
    assert b"No projects yet" in page.content and b"New Project" in page.content
    response = post(client, "/projects/new/", {"name": "web-app"})
    project = Project.objects.get(name="web-app")
    assert project.team == alice.team
    from accounts.models import AuditEntry

    entry = AuditEntry.objects.get(action="project.create")
    assert entry.actor == alice and entry.target_id == str(project.pk)
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/"
    assert client.get("/projects/")["Location"] == f"/projects/{project.pk}/"
    html = client.get(f"/projects/{project.pk}/").content.decode()
    for text in (
        "Add Git Repository",
        "Upload by Link",
        "Upload from Local Storage",
        "Run 'git pull', scan files",
        "File Type Filter",
        "Full list",
        f'href="/finetune/?project={project.pk}"',
        "Proceed to Fine-tuning",
    ):
        assert text in html, text
    again = post(client, "/projects/new/", {"name": "web-app"}, follow=True)
    assert b"already exists" in again.content


def test_sources_scan_filter_and_full_list(team_users) -> None:
    alice, bob = team_users
    client = csrf_client(alice)
    post(client, "/projects/new/", {"name": "p"})
    project = Project.objects.get(name="p")
    refused = post(client, f"/projects/{project.pk}/sources/add/", {"kind": "git", "url": "file:///etc"}, follow=True)
    assert b"local paths and file:// remotes are refused" in refused.content
    upload = io.BytesIO(b"def a():\n    return 1\n")
    upload.name = "a.py"
    post(client, f"/projects/{project.pk}/sources/upload/", {"file": upload, "is_test": "on"})
    js = io.BytesIO(b"let b = 2;\n")
    js.name = "b.js"
    post(client, f"/projects/{project.pk}/sources/upload/", {"file": js})
    assert list(project.sources.values_list("name", "is_test")) == [("a.py", True), ("b.js", False)]

    post(client, f"/projects/{project.pk}/scan/")
    scan_run(scan_id=project.scans.get().pk)
    html = client.get(f"/projects/{project.pk}/").content.decode()
    assert "Last scan: 2 files, 1 accepted." in html and "Type off" in html

    post(
        client, f"/projects/{project.pk}/filter/", {"type": ["py", "js"], "include_masks": "", "exclude_masks": "a.py"}
    )
    project.refresh_from_db()
    assert project.type_selection == ["js", "py"] and project.exclude_masks == "a.py"
    full = client.get(f"/projects/{project.pk}/files/?reason=Excluded+by+mask").content.decode()
    assert "a.py/a.py" in full and "b.js/b.js" not in full
    everything = client.get(f"/projects/{project.pk}/files/").content.decode()
    assert "2 files" in everything

    # Bob, in another team, gets 404 everywhere.
    other = csrf_client(bob)
    assert other.get(f"/projects/{project.pk}/").status_code == 404
    assert other.get(f"/projects/{project.pk}/files/").status_code == 404
    source = project.sources.first()
    assert post(other, f"/projects/sources/{source.pk}/delete/").status_code == 404
    assert post(other, f"/projects/{project.pk}/delete/").status_code == 404
    assert Source.objects.filter(pk=source.pk).exists()


def test_upload_too_large_page_is_413(team_users, settings) -> None:
    settings.REFACT_UPLOAD_MAX_MB = 1
    alice, _ = team_users
    client = csrf_client(alice)
    project = services.project_create(name="p", team=alice.team)
    upload = io.BytesIO(b"x" * (2 * 1024 * 1024))
    upload.name = "big.py"
    response = post(client, f"/projects/{project.pk}/sources/upload/", {"file": upload})
    assert response.status_code == 413
    assert b"the upload is larger than 1 MB" in response.content
    assert not Source.objects.exists()


def test_upload_needs_csrf(team_users) -> None:
    alice, _ = team_users
    client = csrf_client(alice)
    project = services.project_create(name="p", team=alice.team)
    upload = io.BytesIO(b"x = 1\n")
    upload.name = "a.py"
    assert client.post(f"/projects/{project.pk}/sources/upload/", {"file": upload}).status_code == 403


def test_settings_lists_ssh_keys(admin_user) -> None:
    client = csrf_client(admin_user)
    post(client, "/projects/ssh-keys/new/", {"name": "deploy"})
    key = SshKey.objects.get()
    html = client.get("/settings/").content.decode()
    assert "SSH keys" in html and key.public_key in html and key.fingerprint in html
    post(client, f"/projects/ssh-keys/{key.pk}/delete/")
    assert not SshKey.objects.exists()
