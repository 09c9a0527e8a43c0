"""Hostile git remotes and download links: refused through the service, the REST API and at connect time.

What tests/projects/test_gitclient.py and test_downloads.py already prove (transports, option injection,
download redirects) is not repeated; this file covers private addresses for git, numeric and
IPv6-mapped spellings, malformed URLs, redirects from a real HTTPS git server, and the REST door.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from projects import services
from projects.downloads import download
from projects.errors import SourceError
from projects.gitclient import GitClient, parse_remote
from projects.models import Project, Source
from tests.projects.conftest import git
from tests.security.conftest import bearer, files_under

PRIVATE_GIT_REMOTES = [
    "https://127.0.0.1/org/repo.git",
    "https://localhost/org/repo.git",
    "https://169.254.169.254/latest/meta-data",
    "https://10.1.2.3/org/repo.git",
    "https://192.168.0.1/org/repo.git",
    "https://172.16.5.4/org/repo.git",
    "https://100.64.0.1/org/repo.git",
    "https://0/org/repo.git",
    "https://2130706433/org/repo.git",  # 127.0.0.1 as one decimal number
    "https://0x7f.1/org/repo.git",  # 127.0.0.1 in hex shorthand
    "https://0177.0.0.1/org/repo.git",  # 127.0.0.1 in octal
    "ssh://git@127.0.0.1/org/repo.git",
    "ssh://git@localhost:2222/org/repo.git",
    "git@localhost:org/repo.git",
    "git@10.0.0.7:org/repo.git",
    "git@169.254.169.254:org/repo.git",
]

MALFORMED_GIT_REMOTES = [
    ("https://[::1/repo", "not a valid remote"),
    ("ssh://git@example.com:99999/x", "not a valid remote"),
    ("https://example.com:port/x", "not a valid remote"),
    ("ext::sh -c id", "spaces"),
    ("ext::sh", "ext::"),
    ("--upload-pack=touch /tmp/pwned", "may not start with '-'"),
    ("-uevil", "may not start with '-'"),
    ("file:///etc/passwd", "file://"),
    ("/etc", "local paths"),
    ("~/repo", "local paths"),
    ("../repo", "local paths"),
    ("git@example.com:--upload-pack=touch", "may not start with '-'"),
]


@pytest.fixture
def project(db, data_dir) -> Project:
    return services.project_create(name="hostile")


@pytest.mark.parametrize("url", PRIVATE_GIT_REMOTES)
def test_git_remotes_reaching_private_addresses_are_refused_when_added(project, url) -> None:
    with pytest.raises(SourceError, match="private, loopback or link-local") as caught:
        services.source_add_git(project=project, url=url)
    assert caught.value.field == "url" and "REFACT_GIT_ALLOW_PRIVATE" in caught.value.message
    assert not Source.objects.exists()


@pytest.mark.parametrize(("url", "message"), MALFORMED_GIT_REMOTES)
def test_malformed_git_remotes_are_a_clear_refusal(project, url, message) -> None:
    with pytest.raises(SourceError, match=message):
        services.source_add_git(project=project, url=url)
    assert not Source.objects.exists()


def test_a_name_that_does_not_resolve_yet_may_be_added_and_fails_cleanly_at_clone(project, tmp_path) -> None:
    # The server may be offline when the source is added; the clone checks again and says why.
    source = services.source_add_git(project=project, url="https://git.invalid/org/repo.git")
    with pytest.raises(SourceError, match="cannot resolve git.invalid"):
        GitClient(parse_remote(source.url)).clone(target=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "url_template",
    ["https://localhost:{port}/repo.git", "https://127.0.0.1:{port}/repo.git", "ssh://git@127.0.0.1:{port}/r"],
)
def test_git_never_connects_to_a_private_address(listener, tmp_path, url_template) -> None:
    """Refused before git runs: the listener on loopback sees no connection at all."""
    port, connections = listener
    client = GitClient(parse_remote(url_template.format(port=port), allow_local=False))
    with pytest.raises(SourceError, match="resolves to 127.0.0.1"):
        client.clone(target=tmp_path / "out")
    assert connections == [] and not (tmp_path / "out").exists()
    assert [path.name for path in tmp_path.iterdir()] == []  # no staging directory left behind


@pytest.fixture
def served_repositories(tmp_path) -> Path:
    """A directory holding one bare repository, `repo.git`."""
    work = tmp_path / "work"
    work.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    (work / "app.py").write_text("print('served over https')\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    served = tmp_path / "served"
    served.mkdir()
    git("clone", "--quiet", "--bare", str(work), str(served / "repo.git"), cwd=tmp_path)
    shutil.rmtree(work)
    return served


def test_allowed_private_remote_clones_over_https_pinned_to_the_checked_address(
    settings, https_server, served_repositories, tmp_path
) -> None:
    settings.REFACT_GIT_ALLOW_PRIVATE = True
    server = https_server(directory=served_repositories)
    remote = parse_remote(f"https://localhost:{server.port}/repo.git")
    client = GitClient(remote)
    environment = client._environment(tmp_path / "home-probe", addresses=["127.0.0.1"])
    pinned = {
        environment[f"GIT_CONFIG_KEY_{i}"]: environment[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(environment["GIT_CONFIG_COUNT"]))
    }
    assert pinned["http.curloptResolve"] == f"localhost:{server.port}:127.0.0.1"
    assert pinned["http.followRedirects"] == "false"
    head = client.clone(target=tmp_path / "clone")
    assert len(head) == 40 and (tmp_path / "clone" / "app.py").read_text() == "print('served over https')\n"
    assert any(path.endswith("/info/refs?service=git-upload-pack") for path in server.requests)


def test_ssh_is_pinned_to_the_checked_address_and_its_command_is_quoted(tmp_path) -> None:
    """git runs GIT_SSH_COMMAND through the shell: `[host]:port` must reach ssh as written, not as a glob
    a file in the repository could match."""
    import shlex

    client = GitClient(parse_remote("ssh://git@example.com:2222/org/repo.git"))
    (tmp_path / "home").mkdir()
    command = client._environment(tmp_path / "home", addresses=["93.184.216.34"])["GIT_SSH_COMMAND"]
    words = shlex.split(command)
    for option in ("HostName=93.184.216.34", "HostKeyAlias=[example.com]:2222"):
        assert words[words.index(option) - 1] == "-o", words
    assert "'HostKeyAlias=[example.com]:2222'" in command


@pytest.mark.parametrize(
    "location", ["https://169.254.169.254/latest/meta-data/", "https://127.0.0.1:1/other.git/info/refs"]
)
def test_git_does_not_follow_a_redirect(settings, https_server, tmp_path, location) -> None:
    """Even where the first host is allowed, a redirect is never followed: its target was never checked."""
    settings.REFACT_GIT_ALLOW_PRIVATE = True
    server = https_server(redirect_to=location)
    client = GitClient(parse_remote(f"https://localhost:{server.port}/repo.git"))
    with pytest.raises(SourceError, match="git failed"):
        client.clone(target=tmp_path / "clone")
    assert len(server.requests) == 1  # the first answer only; nothing fetched from the redirect
    assert not (tmp_path / "clone").exists()


# --- links -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/code.zip",
        "http://localhost:8080/code.zip",
        "http://[::1]/code.zip",
        "http://[::ffff:127.0.0.1]/code.zip",  # IPv4-mapped IPv6
        "http://[fe80::1]/code.zip",
        "http://169.254.169.254/latest/code.zip",
        "http://2130706433/code.zip",
        "https://0x7f000001/code.zip",
        "http://10.0.0.1/code.zip",
    ],
)
def test_links_to_private_addresses_are_refused_when_added(project, url) -> None:
    with pytest.raises(SourceError, match="private, loopback or link-local") as caught:
        services.source_add_link(project=project, url=url)
    assert caught.value.field == "url" and not Source.objects.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1/code.zip", "not a valid link"),
        ("http://example.com:99999/code.zip", "not a valid link"),
        ("http://example.com/co\nde.zip", "control characters"),
        ("file:///etc/passwd.zip", "only http:// and https://"),
        ("javascript:alert(1)//a.zip", "only http:// and https://"),
        ("//example.com/a.zip", "only http:// and https://"),
    ],
)
def test_malformed_links_are_a_clear_refusal(project, url, message) -> None:
    with pytest.raises(SourceError, match=message):
        services.source_add_link(project=project, url=url)
    assert not Source.objects.exists()


class EndlessBody(BaseHTTPRequestHandler):
    """Declares no length and never stops: only the byte counter can end it."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"z" * 65536
        try:
            for _ in range(10_000):
                self.wfile.write(chunk)
        except OSError:
            pass


@pytest.fixture
def endless_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), EndlessBody)
    httpd.handle_error = lambda *args: None  # type: ignore[method-assign]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_undeclared_endless_download_is_cut_at_the_cap(settings, endless_server, data_dir) -> None:
    settings.REFACT_DOWNLOAD_ALLOW_PRIVATE = True
    destination = data_dir / "uploads" / "endless.zip"
    with pytest.raises(SourceError, match="larger than 1 MB"):
        download(url=f"{endless_server}/endless.zip", destination=destination, max_bytes=1024 * 1024)
    assert files_under(data_dir) == {"uploads"}  # neither the file nor its .part stays


# --- the REST door ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        *[("git", url) for url in PRIVATE_GIT_REMOTES[::3]],
        *[("git", url) for url, _ in MALFORMED_GIT_REMOTES],
        ("link", "http://169.254.169.254/latest/meta-data/x.zip"),
        ("link", "http://localhost/x.zip"),
        ("link", "http://[::1/x.zip"),
        ("link", "ftp://example.com/x.zip"),
    ],
)
def test_hostile_sources_through_the_rest_api_are_400_with_the_field(
    client, alice, api_key_for, data_dir, kind, url
) -> None:
    project = services.project_create(name="api", team=alice.team)
    response = client.post(
        f"/api/projects/{project.pk}/sources/",
        {"kind": kind, "url": url},
        content_type="application/json",
        **bearer(api_key_for(alice)),
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "url"
    assert not Source.objects.exists() and files_under(data_dir) == set()
