"""manage.py project_create, source_add and project_scan, end to end on a real git repository and files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from projects.models import REASONS, Project, Source

pytestmark = pytest.mark.django_db(transaction=True)


def run(*arguments: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*arguments, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_add_and_scan(allow_local_git, git_repository: Path, tmp_path: Path) -> None:
    out, _ = run("project_create", "demo")
    assert "project 'demo' created" in out
    with pytest.raises(CommandError, match="already exists"):
        run("project_create", "demo")

    run("source_add", "demo", "--git", str(git_repository), "--branch", "feature")
    held_out = tmp_path / "held_out.py"
    held_out.write_text("def held_out():\n    return 3\n")
    run("source_add", "demo", "--file", str(held_out), "--test-set")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    run("source_add", "demo", "--file", str(broken))

    with pytest.raises(CommandError, match="source broken.zip: not a readable") as caught:
        call_command("project_scan", "demo", stdout=(out_buffer := io.StringIO()), stderr=io.StringIO())
    assert caught.value.returncode == 1  # manage.py exits non-zero
    summary = out_buffer.getvalue().splitlines()
    assert summary[0] == "Accepted: 4"  # app.py, lib/util.py, feature.py, held_out.py
    assert summary[1:] == [f"{reason}: 0" for reason in REASONS]
    project = Project.objects.get(name="demo")
    assert project.sources.get(kind=Source.Kind.GIT).status == Source.Status.READY


def test_source_add_refusals(tmp_path: Path) -> None:
    run("project_create", "p")
    with pytest.raises(CommandError, match="ext::"):
        run("source_add", "p", "--git", "ext::sh")
    with pytest.raises(CommandError, match="local paths"):
        run("source_add", "p", "--git", str(tmp_path))
    with pytest.raises(CommandError, match="only http:// and https://"):
        run("source_add", "p", "--url", "file:///etc/passwd")
    with pytest.raises(CommandError, match="--test-set goes with --file"):
        run("source_add", "p", "--url", "https://example.com/a.zip", "--test-set")
    with pytest.raises(CommandError, match="no project named"):
        run("source_add", "nope", "--url", "https://example.com/a.zip")
    with pytest.raises(CommandError, match="no SSH key named"):
        run("source_add", "p", "--git", "git@example.com:a/b.git", "--ssh-key", "missing")
    assert not Source.objects.exists()
