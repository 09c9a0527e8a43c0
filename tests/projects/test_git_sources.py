"""Git sources through the scan: two branches, pull with unchanged HEAD skips reading, host-key pinning."""

from __future__ import annotations

from pathlib import Path

import pytest

import projects.scanning as scanning
from projects import services
from projects.gitclient import GitClient, explain_failure, parse_remote
from projects.models import KnownHost, Source
from projects.selectors import project_training_files
from tests.projects.conftest import git


def scan(project):
    run = services.project_scan_start(project=project)
    scanning.scan_run(scan_id=run.pk)
    run.refresh_from_db()
    return run


@pytest.fixture
def read_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = scanning.read_and_classify

    def counting(task):
        calls.append(len(task[1]))
        return original(task)

    monkeypatch.setattr(scanning, "read_and_classify", counting)
    return calls


@pytest.mark.usefixtures("allow_local_git")
def test_two_branches_and_pull(db, git_repository: Path, read_calls: list[int]) -> None:
    project = services.project_create(name="repo")
    services.source_add_git(project=project, url=str(git_repository))
    services.source_add_git(project=project, url=str(git_repository), branch="feature")
    first = scan(project)
    assert first.status == "completed" and first.failed_sources == []
    paths = [file.path for file in project_training_files(project=project)]
    # The feature branch's copies of app.py and lib/util.py are duplicates of main's.
    assert paths == ["upstream/app.py", "upstream/lib/util.py", "upstream-2/feature.py"]
    assert sum(read_calls) == 5

    read_calls.clear()
    second = scan(project)  # HEAD unchanged on both: nothing is read again
    assert read_calls == [] and second.summary == first.summary

    (git_repository / "more.py").write_text("def more():\n    return 4\n")
    git("add", "-A", cwd=git_repository)
    git("commit", "--quiet", "-m", "more", cwd=git_repository)
    read_calls.clear()
    scan(project)  # main moved: only that source is read again
    assert sum(read_calls) == 3
    assert "upstream/more.py" in [file.path for file in project_training_files(project=project)]
    main_source = Source.objects.get(name="upstream")
    assert main_source.revision == git("rev-parse", "main", cwd=git_repository) == main_source.scanned_revision


def test_git_failure_is_on_its_source(db, settings) -> None:
    settings.REFACT_GIT_ALLOW_LOCAL = True
    project = services.project_create(name="p")
    services.source_add_git(project=project, url="/nonexistent/repository")
    result = scan(project)
    source = Source.objects.get()
    assert source.status == Source.Status.FAILED and source.error.startswith("git failed")
    assert result.failed_sources == [{"source": source.name, "error": source.error}]


def test_host_keys_pinned_on_first_use(db) -> None:
    client = GitClient(parse_remote("git@git.example.com:org/repo.git"))
    client.known_hosts_after = "git.example.com ssh-ed25519 AAAAC3NzaFirst\n"
    scanning._pin_new_host_keys(client)
    assert KnownHost.objects.get().lines == "git.example.com ssh-ed25519 AAAAC3NzaFirst"
    # The next connection gets the pinned line; ssh refuses a different key and we say so.
    from projects.gitclient import SshMaterial

    material = scanning._git_client(
        Source(kind=Source.Kind.GIT, url="git@git.example.com:org/repo.git", project_id=1)
    ).ssh
    assert isinstance(material, SshMaterial) and "AAAAC3NzaFirst" in material.known_hosts
    changed = "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n"
    assert "host key of this server has changed" in explain_failure(changed)
