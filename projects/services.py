"""Writes for projects, sources, SSH keys and scans: the pages, the API, the admin and manage.py call these."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.services import audit_record
from projects.archives import is_archive_name
from projects.errors import SourceError
from projects.models import KnownHost, Project, Scan, Source, SshKey
from projects.scanning import evaluate, project_directory, source_tree, source_upload
from refact_site.exceptions import ApplicationError, ConflictError

NAME = re.compile(r"^[^/\\\x00-\x1f]{1,100}$")


def _audit(*, actor: Any, action: str, target: Any, diff: dict | None = None) -> None:
    audit_record(actor=actor if getattr(actor, "pk", None) else None, action=action, target=target, diff=diff)


def _check_name(name: str, *, field: str = "name") -> str:
    name = (name or "").strip()
    if not NAME.match(name) or name in (".", ".."):
        raise ApplicationError(f"{field}: 1 to 100 characters, no slashes or control characters", field=field)
    return name


# --- projects -------------------------------------------------------------------------------


def project_create(*, name: str, team: Any = None, actor: Any = None) -> Project:
    name = _check_name(name)
    try:
        with transaction.atomic():
            project = Project.objects.create(
                name=name, team=team, created_by=actor if getattr(actor, "pk", None) else None
            )
    except IntegrityError:
        raise ConflictError(f"name: a project named {name!r} already exists", field="name") from None
    _audit(actor=actor, action="project.create", target=project)
    return project


def project_rename(*, project: Project, name: str, actor: Any = None) -> Project:
    name = _check_name(name)
    old = project.name
    project.name = name
    try:
        with transaction.atomic():
            project.save(update_fields=["name"])
    except IntegrityError:
        project.name = old
        raise ConflictError(f"name: a project named {name!r} already exists", field="name") from None
    _audit(actor=actor, action="project.rename", target=project, diff={"name": [old, name]})
    return project


def project_delete(*, project: Project, actor: Any = None) -> None:
    directory = project_directory(project.pk)
    _audit(actor=actor, action="project.delete", target=project)
    project.delete()
    # After the rows: a failure to remove files never leaves rows pointing at nothing.
    transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))


def project_filter_update(
    *,
    project: Project,
    type_selection: list[str] | None = None,
    include_masks: str | None = None,
    exclude_masks: str | None = None,
    actor: Any = None,
) -> int:
    """Save the File Type Filter and re-evaluate the latest scan without reading files; returns changes."""
    import pathspec

    fields = []
    if type_selection is not None:
        project.type_selection = sorted({str(item) for item in type_selection})
        fields.append("type_selection")
    for field, value in (("include_masks", include_masks), ("exclude_masks", exclude_masks)):
        if value is None:
            continue
        try:
            pathspec.GitIgnoreSpec.from_lines([line for line in value.splitlines() if line.strip()])
        except (ValueError, TypeError) as error:
            raise ApplicationError(f"{field}: {error}", field=field) from None
        setattr(project, field, value.strip())
        fields.append(field)
    with transaction.atomic():
        if fields:
            project.save(update_fields=fields)
        scan = project.scans.filter(status="completed").order_by("-pk").first()
        changed = evaluate(scan=scan, project=project) if scan else 0
    _audit(
        actor=actor, action="project.filter", target=project, diff={field: getattr(project, field) for field in fields}
    )
    return changed


# --- SSH keys -------------------------------------------------------------------------------


def ssh_key_create(*, name: str, team: Any = None, actor: Any = None) -> SshKey:
    from projects.sshkeys import generate_key

    name = _check_name(name)
    generated = generate_key(comment=f"refact-{name}".replace(" ", "-"))
    try:
        with transaction.atomic():
            key = SshKey.objects.create(
                name=name,
                team=team,
                public_key=generated.public_key,
                fingerprint=generated.fingerprint,
                private_key_encrypted=generated.private_key_encrypted,
            )
    except IntegrityError:
        raise ConflictError(f"name: an SSH key named {name!r} already exists", field="name") from None
    _audit(actor=actor, action="ssh_key.create", target=key, diff={"fingerprint": key.fingerprint})
    return key


def ssh_key_delete(*, key: SshKey, actor: Any = None) -> None:
    if key.sources.exists():
        raise ConflictError("this SSH key is used by a git source; remove the source first")
    _audit(actor=actor, action="ssh_key.delete", target=key)
    key.delete()


def known_host_forget(*, host: KnownHost, actor: Any = None) -> None:
    _audit(actor=actor, action="known_host.forget", target=host)
    host.delete()


# --- sources --------------------------------------------------------------------------------


def _unique_source_name(project: Project, wanted: str) -> str:
    wanted = re.sub(r"[/\\\x00-\x1f]", "_", wanted).strip() or "source"
    wanted = wanted[:180]
    name, counter = wanted, 2
    while project.sources.filter(name=name).exists():
        name = f"{wanted}-{counter}"
        counter += 1
    return name


def source_add_git(
    *, project: Project, url: str, branch: str = "", ssh_key: SshKey | None = None, actor: Any = None
) -> Source:
    from projects.gitclient import check_branch, parse_remote, remote_check_addresses

    remote = parse_remote(url)
    remote_check_addresses(remote)
    branch = check_branch(branch)
    if ssh_key is not None and remote.kind != "ssh":
        raise ApplicationError(
            "ssh_key: an SSH key is used only with ssh:// or user@host:path remotes", field="ssh_key"
        )
    if ssh_key is not None and ssh_key.team_id != project.team_id:
        raise ApplicationError("ssh_key: no such SSH key", field="ssh_key")
    wanted = remote.url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git") or "repository"
    source = Source.objects.create(
        project=project,
        kind=Source.Kind.GIT,
        name=_unique_source_name(project, wanted),
        url=remote.url,
        branch=branch,
        ssh_key=ssh_key,
    )
    _audit(actor=actor, action="source.add", target=source, diff={"url": remote.url, "branch": branch})
    return source


def source_add_link(*, project: Project, url: str, actor: Any = None) -> Source:
    from urllib.parse import urlsplit

    from projects.downloads import check_link_addresses, check_url

    url = check_url(url)
    check_link_addresses(url)
    file_name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not is_archive_name(file_name):
        raise ApplicationError("url: the link must name a .zip, .tar.gz, .tgz, .tar.bz2 or .tar file", field="url")
    source = Source.objects.create(
        project=project,
        kind=Source.Kind.LINK,
        name=_unique_source_name(project, file_name),
        url=url,
        upload_name=file_name,
    )
    _audit(actor=actor, action="source.add", target=source, diff={"url": url})
    return source


def upload_limit_bytes() -> int:
    return settings.REFACT_UPLOAD_MAX_MB * 1024 * 1024


def upload_too_large_message() -> str:
    return f"file: the upload is larger than {settings.REFACT_UPLOAD_MAX_MB} MB (REFACT_UPLOAD_MAX_MB)"


def source_add_upload(
    *, project: Project, file_name: str, stream: IO[bytes] | Path, is_test: bool = False, actor: Any = None
) -> Source:
    """An archive (by its name) is unpacked at scan time; any other file is a single-file source."""
    file_name = Path(file_name.replace("\\", "/")).name
    if not file_name or file_name in (".", ".."):
        raise ApplicationError("file: the file needs a name", field="file")
    archive = is_archive_name(file_name)
    if archive and is_test:
        raise ApplicationError("is_test: only single files can be marked as test-set files", field="is_test")
    limit = upload_limit_bytes()
    with transaction.atomic():
        source = Source.objects.create(
            project=project,
            kind=Source.Kind.ARCHIVE if archive else Source.Kind.FILE,
            name=_unique_source_name(project, file_name),
            upload_name=file_name,
            is_test=is_test,
        )
        destination = source_upload(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            handle = stream.open("rb") if isinstance(stream, Path) else stream
            with destination.open("wb") as out:
                while chunk := handle.read(1024 * 1024):
                    written += len(chunk)
                    if written > limit:
                        raise ApplicationError(upload_too_large_message(), field="file", status=413)
                    out.write(chunk)
        except BaseException:
            shutil.rmtree(destination.parent, ignore_errors=True)
            raise
    _audit(actor=actor, action="source.add", target=source, diff={"file": file_name, "is_test": is_test})
    return source


def source_set_test(*, source: Source, is_test: bool, actor: Any = None) -> Source:
    if is_test and source.kind != Source.Kind.FILE:
        raise ApplicationError("is_test: only single files can be marked as test-set files", field="is_test")
    source.is_test = is_test
    source.save(update_fields=["is_test"])
    _audit(actor=actor, action="source.test_set", target=source, diff={"is_test": is_test})
    return source


def source_delete(*, source: Source, actor: Any = None) -> None:
    tree, upload = source_tree(source), source_upload(source).parent
    _audit(actor=actor, action="source.delete", target=source)
    source.delete()
    transaction.on_commit(lambda: (shutil.rmtree(tree, ignore_errors=True), shutil.rmtree(upload, ignore_errors=True)))


# --- scans ----------------------------------------------------------------------------------


def project_scan_start(*, project: Project, actor: Any = None) -> Scan:
    """Queue a scan ("Run git pull, scan files"); an unfinished one is returned instead of a second."""
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        running = project.scans.filter(status__in=(*Scan.PENDING_STATES, *Scan.ACTIVE_STATES)).first()
        if running is not None:
            return running
        if not project.sources.exists():
            raise ApplicationError(
                "sources: add a git repository, an archive or a file before scanning", field="sources"
            )
        scan = Scan.objects.create(project=project)
        scan.enqueue()
    _audit(actor=actor, action="project.scan", target=project)
    return scan


__all__ = ["SourceError"]
