"""The git door: what remotes pass, what is refused, and real clones of a real two-branch repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from projects.errors import SourceError
from projects.gitclient import GitClient, check_branch, parse_remote
from tests.projects.conftest import git


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://github.com/org/repo", "https"),
        ("ssh://git@example.com/org/repo.git", "ssh"),
        ("ssh://git@example.com:2222/org/repo.git", "ssh"),
        ("git@github.com:org/repo.git", "ssh"),
    ],
)
def test_allowed_remotes(url: str, kind: str) -> None:
    assert parse_remote(url, allow_local=False).kind == kind


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ext::sh -c touch% /tmp/pwned", "spaces"),
        ("ext::sh", "ext::"),
        ("fd::3", "ext::"),
        ("file:///etc", "file://"),
        ("/srv/repo", "local paths"),
        ("./repo", "local paths"),
        ("--upload-pack=touch /tmp/pwned", "may not start with '-'"),
        ("-oProxyCommand=touch", "may not start with '-'"),
        ("ssh://-oProxyCommand=touch/x", "host name"),
        ("git@-oProxyCommand=x:repo", "refused"),
        ("http://example.com/repo", "http:// scheme is refused"),
        ("git://example.com/repo", "git:// scheme is refused"),
        ("https://example.com/repo\nother", "control characters"),
        ("", "required"),
    ],
)
def test_refused_remotes(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        parse_remote(url, allow_local=False)
    assert caught.value.field == "url"


def test_local_remote_needs_the_setting(git_repository: Path) -> None:
    with pytest.raises(SourceError):
        parse_remote(str(git_repository), allow_local=False)
    assert parse_remote(str(git_repository), allow_local=True).kind == "local"
    # Even with the setting, ext:: and option injection stay refused.
    with pytest.raises(SourceError):
        parse_remote("ext::sh", allow_local=True)
    with pytest.raises(SourceError):
        parse_remote("--upload-pack=x", allow_local=True)


@pytest.mark.parametrize("branch", ["--upload-pack=touch", "-b", "a..b", "a b", "x.lock", "a@{1}"])
def test_bad_branches(branch: str) -> None:
    with pytest.raises(SourceError) as caught:
        check_branch(branch)
    assert caught.value.field == "branch"


def test_clone_two_branches_and_pull(settings, git_repository: Path, tmp_path: Path) -> None:
    settings.REFACT_GIT_ALLOW_LOCAL = True
    remote = parse_remote(f"file://{git_repository}")
    client = GitClient(remote)
    main_head = client.clone(target=tmp_path / "main")
    assert (tmp_path / "main" / "app.py").exists() and not (tmp_path / "main" / "feature.py").exists()
    assert main_head == git("rev-parse", "main", cwd=git_repository)
    feature_head = client.clone(target=tmp_path / "feature", branch="feature")
    assert (tmp_path / "feature" / "feature.py").exists()
    assert feature_head != main_head
    # Shallow: one commit of history only.
    assert git("rev-list", "--count", "HEAD", cwd=tmp_path / "feature") == "1"

    assert client.pull(target=tmp_path / "main") == main_head  # unchanged HEAD
    (git_repository / "new.py").write_text("x = 1\n")
    git("add", "-A", cwd=git_repository)
    git("commit", "--quiet", "-m", "more", cwd=git_repository)
    new_head = client.pull(target=tmp_path / "main")
    assert new_head != main_head and (tmp_path / "main" / "new.py").exists()


def test_missing_branch_is_a_clear_error(settings, git_repository: Path, tmp_path: Path) -> None:
    settings.REFACT_GIT_ALLOW_LOCAL = True
    client = GitClient(parse_remote(str(git_repository)))
    with pytest.raises(SourceError, match="branch"):
        client.clone(target=tmp_path / "out", branch="no-such-branch")
    assert not (tmp_path / "out").exists()


def test_file_protocol_refused_by_git_itself(git_repository: Path, tmp_path: Path) -> None:
    """Belt and braces: even if a local remote slipped past parse_remote, protocol.allow stops git."""
    from projects.gitclient import Remote

    client = GitClient(Remote(url=f"file://{git_repository}", kind="https"))
    with pytest.raises(SourceError, match="git failed"):
        client.clone(target=tmp_path / "out")


def test_size_cap(settings, git_repository: Path, tmp_path: Path) -> None:
    import os

    settings.REFACT_GIT_ALLOW_LOCAL = True
    settings.REFACT_GIT_MAX_MB = 1
    (git_repository / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    git("add", "-A", cwd=git_repository)
    git("commit", "--quiet", "-m", "big", cwd=git_repository)
    client = GitClient(parse_remote(str(git_repository)))
    # Checked while git runs and once more when it ends.
    with pytest.raises(SourceError, match="larger than 1 MB"):
        client.clone(target=tmp_path / "out")


def test_ssh_command_pins_host_keys(tmp_path: Path) -> None:
    from projects.gitclient import SshMaterial

    client = GitClient(
        parse_remote("git@example.com:org/repo.git"),
        ssh=SshMaterial(private_key=b"KEY", known_hosts="example.com ssh-ed25519 AAAA\n"),
    )
    environment = client._environment(tmp_path)
    command = environment["GIT_SSH_COMMAND"]
    assert "StrictHostKeyChecking=accept-new" in command and "StrictHostKeyChecking=no" not in command
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in command
    assert (tmp_path / "known_hosts").read_text() == "example.com ssh-ed25519 AAAA\n"
    assert oct((tmp_path / "id_ed25519").stat().st_mode & 0o777) == "0o600"
    assert environment["GIT_TERMINAL_PROMPT"] == "0" and environment["GIT_CONFIG_NOSYSTEM"] == "1"
    keys = {
        environment[f"GIT_CONFIG_KEY_{i}"]: environment[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(environment["GIT_CONFIG_COUNT"]))
    }
    assert keys["protocol.allow"] == "never" and "protocol.file.allow" not in keys
    assert keys["protocol.ssh.allow"] == keys["protocol.https.allow"] == "always"
