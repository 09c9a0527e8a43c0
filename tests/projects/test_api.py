"""The REST API with personas: Alice and Bob in different teams, the admin who sees everything."""

from __future__ import annotations

import csv
import io
import subprocess
import tarfile

import pytest
from django.test import Client

from projects import services
from projects.models import DUPLICATES, Project, Source, SshKey
from projects.scanning import scan_run


@pytest.fixture
def teams(db):
    from accounts.models import Team

    return Team.objects.create(name="red"), Team.objects.create(name="blue")


@pytest.fixture
def alice(django_user_model, teams):
    return django_user_model.objects.create_user("alice", password="alice-password-1", team=teams[0])


@pytest.fixture
def bob(django_user_model, teams):
    return django_user_model.objects.create_user("bob", password="bob-password-1", team=teams[1])


def login(user) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return client


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_projects_are_scoped_to_the_team(alice, bob, admin_user) -> None:
    a, b = login(alice), login(bob)
    created = a.post("/api/projects/", {"name": "shared-name"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["team"] == "red"
    # Same name in another team is fine; the same name twice in one team is a 409 naming the field.
    assert b.post("/api/projects/", {"name": "shared-name"}, content_type="application/json").status_code == 201
    again = a.post("/api/projects/", {"name": "shared-name"}, content_type="application/json")
    assert again.status_code == 409 and again.json()["field"] == "name"

    project_id = created.json()["id"]
    assert [p["team"] for p in a.get("/api/projects/").json()] == ["red"]
    for url in (
        f"/api/projects/{project_id}/",
        f"/api/projects/{project_id}/sources/",
        f"/api/projects/{project_id}/files/",
        f"/api/projects/{project_id}/filter/",
        f"/api/projects/{project_id}/scan/",
    ):
        assert b.get(url).status_code == 404, url
    assert b.delete(f"/api/projects/{project_id}/").status_code == 404
    assert login(admin_user).get(f"/api/projects/{project_id}/").status_code == 200
    assert len(login(admin_user).get("/api/projects/").json()) == 2
    assert Client().get("/api/projects/").status_code in (401, 403)


def test_sources_upload_scan_filter_and_full_list(alice, bob, settings) -> None:
    a = login(alice)
    project_id = a.post("/api/projects/", {"name": "p"}, content_type="application/json").json()["id"]
    files = {
        "src/a.py": b"def a():\n    return 1\n",
        "src/b.py": b"def a():\n    return 1\n",
        "web/x.js": b"let x = 1;\n",
    }
    upload = io.BytesIO(tarball(files))
    upload.name = "code.tar.gz"
    response = a.post(f"/api/projects/{project_id}/sources/upload/", {"file": upload})
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "archive"
    refused = a.post(
        f"/api/projects/{project_id}/sources/",
        {"kind": "git", "url": "ext::sh -c id"},
        content_type="application/json",
    )
    assert refused.status_code == 400 and refused.json()["field"] == "url"
    link = a.post(
        f"/api/projects/{project_id}/sources/",
        {"kind": "link", "url": "https://example.com/code.zip"},
        content_type="application/json",
    )
    assert link.status_code == 201
    # The link would be fetched by the scan; keep this test offline.
    a.delete(f"/api/projects/sources/{link.json()['id']}/")
    assert login(bob).delete(f"/api/projects/sources/{response.json()['id']}/").status_code == 404

    started = a.post(f"/api/projects/{project_id}/scan/")
    assert started.status_code == 202
    scan_run(scan_id=started.json()["id"])
    state = a.get(f"/api/projects/{project_id}/scan/").json()
    assert state["status"] == "completed" and state["summary"]["accepted"] == 1

    filter_state = a.get(f"/api/projects/{project_id}/filter/").json()
    assert filter_state["type_selection"] == ["py"]
    assert {t["type"]: t["count"] for t in filter_state["types"]} == {"py": 2, "js": 1}
    updated = a.put(
        f"/api/projects/{project_id}/filter/",
        {"type_selection": ["py", "js"], "exclude_masks": "src/a.py"},
        content_type="application/json",
    ).json()
    assert updated["summary"]["accepted"] == 1 and updated["summary"]["rejected"]["Excluded by mask"] == 1

    page = a.get(f"/api/projects/{project_id}/files/?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    duplicates = a.get(f"/api/projects/{project_id}/files/", {"reason": DUPLICATES}).json()
    assert [row["path"] for row in duplicates["results"]] == ["code.tar.gz/src/b.py"]
    assert a.get(f"/api/projects/{project_id}/files/", {"reason": "Nope"}).json()["field"] == "reason"
    js = a.get(f"/api/projects/{project_id}/files/", {"type": "js", "accepted": "true"}).json()
    assert [row["path"] for row in js["results"]] == ["code.tar.gz/web/x.js"]

    download = a.get(f"/api/projects/{project_id}/files/download/")
    table = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert table[0][0] == "path" and len(table) == 4
    assert ["code.tar.gz/src/a.py", "rejected", "Excluded by mask"] == [table[1][0], table[1][7], table[1][8]]


def test_upload_too_large_is_413(alice, settings) -> None:
    settings.REFACT_UPLOAD_MAX_MB = 1
    a = login(alice)
    project_id = a.post("/api/projects/", {"name": "p"}, content_type="application/json").json()["id"]
    upload = io.BytesIO(b"x" * (2 * 1024 * 1024))
    upload.name = "big.py"
    response = a.post(f"/api/projects/{project_id}/sources/upload/", {"file": upload})
    assert response.status_code == 413
    assert response.json()["detail"] == "file: the upload is larger than 1 MB (REFACT_UPLOAD_MAX_MB)"
    assert not Source.objects.exists()


def test_upload_counted_while_streaming(alice, settings) -> None:
    """A body without an honest Content-Length is still stopped by the byte counter."""
    from projects.uploads import SizeLimitHandler, TooLarge

    settings.REFACT_UPLOAD_MAX_MB = 1
    handler = SizeLimitHandler()
    handler.receive_data_chunk(b"x" * (1024 * 1024), 0)
    with pytest.raises(TooLarge):
        handler.receive_data_chunk(b"x", 1024 * 1024)


def test_ssh_keys(alice, bob, tmp_path) -> None:
    a = login(alice)
    created = a.post("/api/projects/ssh-keys/", {"name": "deploy"}, content_type="application/json").json()
    assert created["public_key"].startswith("ssh-ed25519 ")
    key_file = tmp_path / "key.pub"
    key_file.write_text(created["public_key"] + "\n")
    ssh_keygen = subprocess.run(["ssh-keygen", "-lf", str(key_file)], capture_output=True, text=True, check=True)  # noqa: S603, S607
    assert created["fingerprint"] in ssh_keygen.stdout
    key = SshKey.objects.get()
    assert b"PRIVATE KEY" not in bytes(key.private_key_encrypted)  # encrypted at rest
    from projects.sshkeys import decrypt_private_key

    assert decrypt_private_key(key.private_key_encrypted).startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert login(bob).get("/api/projects/ssh-keys/").json() == []
    assert login(bob).delete(f"/api/projects/ssh-keys/{created['id']}/").status_code == 404
    project = Project.objects.create(name="p", team=alice.team)
    source = a.post(
        f"/api/projects/{project.pk}/sources/",
        {"kind": "git", "url": "git@example.com:org/repo.git", "ssh_key": created["id"]},
        content_type="application/json",
    )
    assert source.status_code == 201 and source.json()["ssh_key"] == "deploy"
    assert a.delete(f"/api/projects/ssh-keys/{created['id']}/").status_code == 409


def test_schema_builds(admin_client) -> None:
    assert admin_client.get("/api/schema/").status_code == 200


def test_project_delete_removes_files(alice, django_capture_on_commit_callbacks) -> None:
    project = services.project_create(name="gone", team=alice.team)
    source = services.source_add_upload(project=project, file_name="a.py", stream=io.BytesIO(b"x = 1\n"))
    from projects.scanning import project_directory, source_upload

    assert source_upload(source).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = login(alice).delete(f"/api/projects/{project.pk}/")
    assert response.status_code == 204
    assert not project_directory(project.pk).exists()
