"""The one door for git remotes.

Only https://, ssh:// and scp-style user@host:path remotes pass; transports that run commands or read
the server's disk (ext::, file://, local paths) and anything that could be read as an option are
refused before git runs. git itself runs with protocol.allow limited to https and ssh, no prompts,
no system or global config, a throwaway HOME, no submodules, no symlinks, a timeout and a size cap.
SSH host keys are pinned on first use (StrictHostKeyChecking=accept-new against the pinned lines):
a changed key is refused, never silently accepted.

The remote's host is resolved here and refused when any address is private, loopback or link-local
(unless REFACT_GIT_ALLOW_PRIVATE); git and ssh are then pinned to the checked address, so a DNS
answer that changes between the check and the connection cannot reach the inside network, and
HTTP redirects are not followed (their target would escape the check).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from projects.downloads import address_allowed
from projects.errors import SourceError

SCP_STYLE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<path>[^\s]+)$")
HOST_NAME = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")
# git check-ref-format, roughly, plus: never starting with '-' (it would be read as an option).
BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)(?!.*//)[A-Za-z0-9._/+@-]{1,250}(?<![./])(?<!\.lock)$")
PROGRESS_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Remote:
    url: str
    kind: str  # "https", "ssh" or "local"
    ssh_host: str = ""  # as known_hosts names it: host or [host]:port


def parse_remote(url: str, *, allow_local: bool | None = None) -> Remote:
    """Accept a remote or raise SourceError naming the `url` field."""
    allow_local = settings.REFACT_GIT_ALLOW_LOCAL if allow_local is None else allow_local
    url = url.strip()
    if not url:
        raise SourceError("url: a git remote is required", field="url")
    if url.startswith("-") or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise SourceError(
            "url: a git remote may not start with '-' or contain spaces or control characters", field="url"
        )
    if "::" in url.split("/", 1)[0]:
        raise SourceError("url: git transports such as ext:: are refused", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises for a port that is not a number from 0 to 65535)
    except ValueError as error:
        raise SourceError(f"url: not a valid remote ({error})", field="url") from None
    if parts.scheme == "https":
        if not parts.hostname or not HOST_NAME.match(parts.hostname):
            raise SourceError("url: the https remote needs a host name", field="url")
        return Remote(url=url, kind="https")
    if parts.scheme == "ssh":
        if not parts.hostname or not HOST_NAME.match(parts.hostname) or parts.hostname.startswith("-"):
            raise SourceError("url: the ssh remote needs a host name", field="url")
        if parts.username and parts.username.startswith("-"):
            raise SourceError("url: the ssh user name may not start with '-'", field="url")
        host = parts.hostname if not parts.port or parts.port == 22 else f"[{parts.hostname}]:{parts.port}"
        return Remote(url=url, kind="ssh", ssh_host=host)
    match = SCP_STYLE.match(url)
    if match and not parts.scheme.startswith(("file", "ext")):
        host = match.group("host")
        if host.startswith("-") or match.group("path").startswith("-"):
            raise SourceError("url: the ssh host and path may not start with '-'", field="url")
        return Remote(url=url, kind="ssh", ssh_host=host.strip("[]"))
    if allow_local and (parts.scheme == "file" or (not parts.scheme and url.startswith("/"))):
        return Remote(url=url, kind="local")
    if parts.scheme == "file" or url.startswith(("/", ".", "~")) or not parts.scheme:
        raise SourceError("url: local paths and file:// remotes are refused; use https:// or ssh://", field="url")
    raise SourceError(
        f"url: the {parts.scheme}:// scheme is refused; use https://, ssh:// or user@host:path", field="url"
    )


def remote_host_port(remote: Remote) -> tuple[str, int] | None:
    """The network host and port git will connect to; None for local remotes."""
    if remote.kind == "local":
        return None
    if remote.kind == "https" or remote.url.startswith("ssh://"):
        parts = urlsplit(remote.url)
        if not parts.hostname:
            return None
        return parts.hostname.strip("[]"), parts.port or (443 if remote.kind == "https" else 22)
    match = SCP_STYLE.match(remote.url)
    return (match.group("host").strip("[]"), 22) if match else None


class UnresolvedHost(SourceError):
    """The remote's host name does not resolve (now)."""


def remote_addresses(remote: Remote, *, allow_private: bool | None = None) -> list[str]:
    """Resolve the remote's host; SourceError when it cannot be resolved or any address is not public."""
    allow_private = settings.REFACT_GIT_ALLOW_PRIVATE if allow_private is None else allow_private
    target = remote_host_port(remote)
    if target is None:
        return []
    host, port = target
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnresolvedHost(f"url: cannot resolve {host}: {getattr(error, 'strerror', error)}", field="url") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        refused = [address for address in addresses if not address_allowed(address)]
        if refused:
            raise SourceError(
                f"url: {host} resolves to {refused[0]}, a private, loopback or link-local address "
                "(REFACT_GIT_ALLOW_PRIVATE)",
                field="url",
            )
    return addresses


def remote_check_addresses(remote: Remote) -> None:
    """When a source is added: refuse a host that resolves to a private address now. A name that does
    not resolve yet is accepted (the server may be offline); the clone checks again when it connects."""
    try:
        remote_addresses(remote)
    except UnresolvedHost:
        pass


def check_branch(branch: str) -> str:
    branch = branch.strip()
    if branch and not BRANCH.match(branch):
        raise SourceError(f"branch: {branch!r} is not a valid branch name", field="branch")
    return branch


@dataclass
class SshMaterial:
    private_key: bytes | None
    known_hosts: str  # pinned lines for every host


class GitClient:
    """Runs git for one operation inside a throwaway HOME; `known_hosts_after` holds what ssh pinned."""

    def __init__(self, remote: Remote, *, ssh: SshMaterial | None = None) -> None:
        self.remote = remote
        self.ssh = ssh
        self.known_hosts_after = ""

    def _environment(self, home: Path, *, addresses: list[str] | None = None) -> dict[str, str]:
        """git's environment; `addresses` (checked by remote_addresses) pin where git and ssh connect."""
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_LFS_SKIP_SMUDGE": "1",
        }
        # An operator's own certificate authority (a self-hosted git server) is honoured.
        for name in ("GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR"):
            if os.environ.get(name):
                environment[name] = os.environ[name]
        allowed = ["https", "ssh"] + (["file"] if self.remote.kind == "local" else [])
        config = [("protocol.allow", "never")] + [(f"protocol.{name}.allow", "always") for name in allowed]
        config += [
            ("core.symlinks", "false"),
            ("core.hooksPath", os.devnull),
            ("submodule.recurse", "false"),
            # A redirect could lead to an address that was never checked: git follows none.
            ("http.followRedirects", "false"),
            ("credential.helper", ""),
        ]
        target = remote_host_port(self.remote)
        if addresses and target is not None and self.remote.kind == "https":
            host, port = target
            pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
            config.append(("http.curloptResolve", f"{host}:{port}:{pinned}"))
        if self.remote.kind == "ssh":
            key_file = home / "id_ed25519"
            known_hosts = home / "known_hosts"
            known_hosts.write_text(self.ssh.known_hosts if self.ssh else "")
            command = [
                "ssh",
                "-F",
                os.devnull,
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                f"UserKnownHostsFile={known_hosts}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=20",
            ]
            if addresses:
                # Connect to the checked address; host keys stay recorded under the name the user gave.
                command += ["-o", f"HostName={addresses[0]}", "-o", f"HostKeyAlias={self.remote.ssh_host}"]
            if self.ssh and self.ssh.private_key:
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(self.ssh.private_key)
                command += ["-i", str(key_file)]
            # git runs this through the shell: quoted, so that "[host]:port" is never read as a glob.
            environment["GIT_SSH_COMMAND"] = shlex.join(command)
            environment["GIT_SSH_VARIANT"] = "ssh"
        environment["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            environment[f"GIT_CONFIG_KEY_{index}"] = key
            environment[f"GIT_CONFIG_VALUE_{index}"] = value
        return environment

    def _run(
        self,
        arguments: list[str],
        *,
        home: Path,
        cwd: Path | None = None,
        watch: Path | None = None,
        on_tick: Callable[[], None] | None = None,
        network: bool = False,
    ) -> str:
        # Resolved and checked right before git connects, and git is pinned to what was checked.
        addresses = remote_addresses(self.remote) if network else None
        environment = self._environment(home, addresses=addresses)
        max_bytes = settings.REFACT_GIT_MAX_MB * 1024 * 1024
        deadline = time.monotonic() + settings.REFACT_GIT_TIMEOUT_SECONDS
        # Fixed argv, no shell; the remote was checked by parse_remote and follows "--".
        process = subprocess.Popen(  # noqa: S603
            ["git", *arguments],  # noqa: S607
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        last_size_check = 0.0
        try:
            while True:
                try:
                    out, err = process.communicate(timeout=PROGRESS_POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if on_tick:
                    on_tick()
                if time.monotonic() > deadline:
                    raise SourceError(
                        f"git took longer than {settings.REFACT_GIT_TIMEOUT_SECONDS} s (REFACT_GIT_TIMEOUT_SECONDS)"
                    )
                if watch is not None and time.monotonic() - last_size_check > 2:
                    last_size_check = time.monotonic()
                    if directory_size(watch) > max_bytes:
                        raise SourceError(
                            f"repository is larger than {settings.REFACT_GIT_MAX_MB} MB (REFACT_GIT_MAX_MB)"
                        )
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        if watch is not None and process.returncode == 0 and directory_size(watch) > max_bytes:
            raise SourceError(f"repository is larger than {settings.REFACT_GIT_MAX_MB} MB (REFACT_GIT_MAX_MB)")
        known_hosts = home / "known_hosts"
        if known_hosts.exists():
            self.known_hosts_after = known_hosts.read_text()
        if process.returncode != 0:
            raise SourceError(explain_failure(err.decode("utf-8", "replace")))
        return out.decode("utf-8", "replace")

    def clone(self, *, target: Path, branch: str = "", on_tick: Callable[[], None] | None = None) -> str:
        """Shallow clone into `target` (replaced only on success); returns HEAD."""
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".clone-", dir=target.parent))
        try:
            with tempfile.TemporaryDirectory(prefix="git-home-") as home:
                arguments = ["clone", "--depth=1", "--single-branch", "--no-recurse-submodules", "--no-tags"]
                if branch:
                    arguments += ["--branch", check_branch(branch)]
                self._run(
                    [*arguments, "--", self.remote.url, str(staging / "tree")],
                    home=Path(home),
                    watch=staging,
                    on_tick=on_tick,
                    network=True,
                )
                head = self._run(["rev-parse", "HEAD"], home=Path(home), cwd=staging / "tree").strip()
            if target.exists():
                shutil.rmtree(target)
            (staging / "tree").rename(target)
            return head
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def pull(self, *, target: Path, branch: str = "", on_tick: Callable[[], None] | None = None) -> str:
        """Fetch the branch tip (shallow) and check it out; returns HEAD (unchanged HEAD: nothing changed)."""
        with tempfile.TemporaryDirectory(prefix="git-home-") as home:
            ref = check_branch(branch) if branch else "HEAD"
            # The remote URL is passed explicitly: a .git/config from elsewhere is never trusted.
            self._run(
                ["fetch", "--depth=1", "--no-tags", "--no-recurse-submodules", "--", self.remote.url, ref],
                home=Path(home),
                cwd=target,
                watch=target,
                on_tick=on_tick,
                network=True,
            )
            self._run(["reset", "--hard", "--quiet", "FETCH_HEAD"], home=Path(home), cwd=target)
            self._run(["clean", "-ffdxq"], home=Path(home), cwd=target)
            return self._run(["rev-parse", "HEAD"], home=Path(home), cwd=target).strip()


def explain_failure(stderr: str) -> str:
    text = stderr.strip()
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
        return (
            "the SSH host key of this server has changed since it was first pinned; refusing to connect "
            "(if the change is expected, an admin removes the host from Known hosts)"
        )
    if "Permission denied (publickey" in text:
        return "the server refused the SSH key: add the key's public half to the repository's deploy keys"
    if "Remote branch" in text and "not found" in text:
        return "branch: " + text.splitlines()[-1].removeprefix("fatal: ").removeprefix("warning: ")
    if "could not read Username" in text or "terminal prompts disabled" in text:
        return "the repository needs credentials: use an SSH remote with a key for private repositories"
    lines = [line for line in text.splitlines() if line.strip()]
    return "git failed: " + (lines[-1].removeprefix("fatal: ") if lines else "unknown error")


def directory_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
