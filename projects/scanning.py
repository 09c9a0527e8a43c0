"""Stage 1: fetch every source, read every file once, store the verdicts in batches.

Memory stays flat with the tree size: paths are walked per source, rows leave for the database in
batches, and only the content hashes seen so far stay in memory (for exact duplicates).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pathspec
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from projects.archives import extract_archive
from projects.detection import read_and_classify, read_file  # noqa: F401 - read_file is part of the scan's API
from projects.errors import SourceError
from projects.models import (
    DUPLICATES,
    EXCLUDED_BY_MASK,
    LINGUIST_ERROR,
    NOT_CODE,
    NOT_TEXT,
    REASONS,
    TYPE_OFF,
    UNRECOVERABLE_REASONS,
    KnownHost,
    Project,
    Scan,
    ScannedFile,
    Source,
)
from refact_site.jobs import keepalive
from refact_site.live import group_name, publish

logger = logging.getLogger(__name__)
BATCH = 1000
PUBLISH_EVERY_SECONDS = 0.5
CHUNK_FILES = 200
# Below this, starting worker processes costs more than it saves.
PARALLEL_FROM_FILES = 5000


def project_directory(project_id: int) -> Path:
    return settings.DATA_DIR / "projects" / str(project_id)


def source_tree(source: Source) -> Path:
    """Where the source's files are on disk (the clone, the unpacked archive, or the single file's folder)."""
    return project_directory(source.project_id) / "sources" / str(source.pk)


def source_upload(source: Source) -> Path:
    return project_directory(source.project_id) / "uploads" / str(source.pk) / "upload"


def project_group(project_id: int) -> str:
    return group_name("project", project_id)


# --- fetching -------------------------------------------------------------------------------


def _git_client(source: Source):
    from projects.gitclient import GitClient, SshMaterial, parse_remote
    from projects.sshkeys import decrypt_private_key

    remote = parse_remote(source.url)
    ssh = None
    if remote.kind == "ssh":
        private_key = decrypt_private_key(source.ssh_key.private_key_encrypted) if source.ssh_key else None
        known = "".join(line.rstrip("\n") + "\n" for line in KnownHost.objects.values_list("lines", flat=True))
        ssh = SshMaterial(private_key=private_key, known_hosts=known)
    return GitClient(remote, ssh=ssh)


def _pin_new_host_keys(client) -> None:
    """Record the host keys ssh accepted on first contact, one row per host."""
    from projects.gitclient import GitClient

    assert isinstance(client, GitClient)
    for line in client.known_hosts_after.splitlines():
        fields = line.split()
        if len(fields) < 3 or line.startswith("#"):
            continue
        host = fields[0]
        existing = KnownHost.objects.filter(host=host).first()
        if existing is None:
            KnownHost.objects.create(host=host, lines=line)
        elif line not in existing.lines.splitlines():
            # Another key type of the same host offered on the same pinned connection.
            existing.lines = existing.lines.rstrip("\n") + "\n" + line
            existing.save(update_fields=["lines"])


def fetch_source(source: Source, *, on_tick: Callable[[], None] | None = None) -> None:
    """Bring the source's tree up to date and set its revision; SourceError on refusal."""
    tree = source_tree(source)
    if source.kind == Source.Kind.GIT:
        client = _git_client(source)
        try:
            if (tree / ".git").is_dir():
                source.revision = client.pull(target=tree, branch=source.branch, on_tick=on_tick)
            else:
                source.revision = client.clone(target=tree, branch=source.branch, on_tick=on_tick)
        finally:
            _pin_new_host_keys(client)
        return
    upload = source_upload(source)
    if source.kind == Source.Kind.LINK and not (tree.exists() and source.revision):
        from projects.downloads import download

        download(url=source.url, destination=upload)
    if not upload.exists():
        if tree.exists() and source.revision:
            return  # unpacked earlier; the upload itself is not kept after a successful unpack
        raise SourceError("the uploaded file is missing from the data directory; add the source again")
    revision = file_sha256(upload)
    if source.kind == Source.Kind.FILE:
        staging = tree.with_name(tree.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copyfile(upload, staging / (source.upload_name or "file"))
        if tree.exists():
            shutil.rmtree(tree)
        staging.rename(tree)
    elif not (tree.exists() and source.revision == revision):
        extract_archive(archive=upload, target=tree)
    source.revision = revision


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# --- walking and reading --------------------------------------------------------------------


def walk(root: Path) -> Iterator[str]:
    """Relative paths of regular files in a stable order; `.git`, hidden directories and links skipped."""
    stack = [""]
    while stack:
        relative = stack.pop()
        try:
            entries = sorted(os.scandir(root / relative if relative else root), key=lambda entry: entry.name)
        except OSError:
            continue
        directories = []
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith("."):
                    directories.append(path)
            elif entry.is_file(follow_symlinks=False):
                yield path
        stack.extend(reversed(directories))


# --- the scan -------------------------------------------------------------------------------


# Columns written per file; rows travel as plain tuples (the ORM's per-object cost was most of a scan).
READ_FIELDS = ("path", "file_type", "language", "size", "lines", "digit_ratio", "sha256", "read_reason")
INSERT_FIELDS = ("scan_id", "source_id", "position", *READ_FIELDS, "is_test", "is_duplicate", "reason")


class _Writer:
    """Positions, exact-duplicate detection and batched inserts for one scan."""

    def __init__(self, scan: Scan, on_batch: Callable[[], None]) -> None:
        self.scan = scan
        self.on_batch = on_batch
        self.position = 0
        self.bytes = 0
        self.batch: list[tuple] = []
        self.kept_by_hash: dict[str, int] = {}
        self.test_kept: set[int] = set()
        table = connection.ops.quote_name(ScannedFile._meta.db_table)
        columns = ", ".join(
            connection.ops.quote_name(ScannedFile._meta.get_field(name.removesuffix("_id")).column)
            for name in INSERT_FIELDS
        )
        placeholders = ", ".join(["%s"] * len(INSERT_FIELDS))
        self.sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 - names from the model

    def add(self, source_id: int, is_test: bool, read: tuple) -> None:
        """`read` holds READ_FIELDS in order."""
        position = self.position
        self.position += 1
        self.bytes += read[3]
        is_duplicate = False
        sha256, read_reason = read[6], read[7]
        if not read_reason and sha256:
            kept = self.kept_by_hash.setdefault(sha256, position)
            if kept != position:
                is_duplicate = True
                if is_test:
                    self.test_kept.add(kept)  # the test mark follows the copy that is kept
        self.batch.append((self.scan.pk, source_id, position, *read, is_test, is_duplicate, ""))
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            # One transaction per batch: in autocommit every row would be its own commit.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(self.sql, self.batch)
            self.batch = []
        self.on_batch()


def _chunked(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def scan_processes(file_count: int) -> int:
    """Worker processes for reading and classifying: the CPU-bound part spreads over the cores."""
    if file_count < PARALLEL_FROM_FILES:
        return 1
    return settings.REFACT_SCAN_PROCESSES or os.cpu_count() or 1


def _scan_source_files(source: Source, writer: _Writer, *, file_count: int) -> None:
    root = str(source_tree(source))
    tasks = ((root, chunk) for chunk in _chunked(walk(Path(root)), CHUNK_FILES))
    processes = scan_processes(file_count)
    if processes <= 1:
        results: Iterator[list[tuple]] = map(read_and_classify, tasks)
        for rows in results:
            for read in rows:
                writer.add(source.pk, source.is_test, read)
        return
    # spawn, not fork: the scan runs inside a threaded worker, and forking threads copies held locks.
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        for rows in pool.imap(read_and_classify, tasks):
            for read in rows:
                writer.add(source.pk, source.is_test, read)


def _reuse_source_files(source: Source, previous: Scan, writer: _Writer) -> None:
    rows = previous.files.filter(source=source).order_by("position").values_list(*READ_FIELDS)
    for read in rows.iterator(2000):
        writer.add(source.pk, source.is_test, read)


def scan_run(*, scan_id: int) -> None:
    """The actor's body: idempotent (a finished or taken scan is left alone)."""
    if not Scan.claim(scan_id, to_state="running"):
        return
    scan = Scan.objects.select_related("project").get(pk=scan_id)
    project = scan.project
    if scan.attempts_exhausted:
        # The scan itself keeps killing its worker (memory, a crashing parser): stop trying.
        logger.error("scan %s: %s", scan_id, scan.exhausted_message)
        Scan.objects.filter(pk=scan_id).update(
            status="failed", error=scan.exhausted_message, finished_at=timezone.now()
        )
        publish(project_group(project.pk), {"type": "scan", "scan": scan_state(Scan.objects.get(pk=scan_id))})
        return
    try:
        with keepalive(scan):
            _scan(scan, project)
    except Exception as error:  # the row must say why, whatever went wrong
        logger.exception("scan %s failed", scan_id)
        Scan.objects.filter(pk=scan_id).update(status="failed", error=str(error)[:2000], finished_at=timezone.now())
        publish(project_group(project.pk), {"type": "scan", "scan": scan_state(Scan.objects.get(pk=scan_id))})


def _scan(scan: Scan, project: Project) -> None:
    ScannedFile.objects.filter(scan=scan).delete()  # a re-run after a crash starts the rows over
    group = project_group(project.pk)
    started = time.monotonic()
    last_publish = 0.0
    previous = project.scans.filter(status="completed").exclude(pk=scan.pk).order_by("-pk").first()
    failed: list[dict[str, str]] = []
    sources = list(project.sources.select_related("ssh_key").order_by("pk"))

    def heartbeat(**fields: object) -> None:
        nonlocal last_publish
        if not scan.beat(**fields):
            raise SourceError("the scan was taken over by another worker")
        if time.monotonic() - last_publish > PUBLISH_EVERY_SECONDS:
            last_publish = time.monotonic()
            publish(group, {"type": "scan", "scan": scan_state(scan)})

    # Fetching: the first tenth of the bar.
    plans: list[tuple[Source, bool]] = []  # (source, reuse earlier rows)
    for index, source in enumerate(sources):
        Source.objects.filter(pk=source.pk).update(status=Source.Status.FETCHING, error="")
        try:
            fetch_source(source, on_tick=lambda: heartbeat())
        except SourceError as error:
            Source.objects.filter(pk=source.pk).update(status=Source.Status.FAILED, error=error.message)
            failed.append({"source": source.name, "error": error.message})
            # Earlier results of a failed source stay as they were.
            if previous and source.scanned_revision:
                plans.append((source, True))
        else:
            Source.objects.filter(pk=source.pk).update(status=Source.Status.READY, error="", revision=source.revision)
            unchanged = bool(previous and source.revision and source.revision == source.scanned_revision)
            plans.append((source, unchanged))
        heartbeat(progress=10.0 * (index + 1) / max(len(sources), 1))

    counts: dict[int, int] = {}
    for source, reuse in plans:
        if reuse:
            counts[source.pk] = previous.files.filter(source=source).count()
        else:
            counts[source.pk] = sum(1 for _ in walk(source_tree(source)))
    total = sum(counts.values())
    scan.files_total = total

    def on_batch() -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        done = writer.position
        heartbeat(
            files_total=total,
            files_done=done,
            bytes_done=writer.bytes,
            files_per_second=round(done / elapsed, 1),
            progress=10.0 + 89.0 * done / max(total, 1),
            eta_seconds=(total - done) / (done / elapsed) if done else None,
        )

    writer = _Writer(scan, on_batch)
    for source, reuse in plans:
        if reuse:
            _reuse_source_files(source, previous, writer)
        else:
            _scan_source_files(source, writer, file_count=counts[source.pk])
    writer.flush()
    if writer.test_kept:
        for chunk in _chunks(sorted(writer.test_kept), BATCH):
            ScannedFile.objects.filter(scan=scan, position__in=chunk).update(is_test=True)

    with transaction.atomic():
        project.refresh_from_db()
        if project.type_selection is None:
            project.type_selection = _most_common_code_type(scan)
            project.save(update_fields=["type_selection"])
        evaluate(scan=scan, project=project)
        now = timezone.now()
        for source, _reuse in plans:
            if not any(entry["source"] == source.name for entry in failed):
                Source.objects.filter(pk=source.pk).update(scanned_revision=source.revision, last_scan_at=now)
        elapsed = max(time.monotonic() - started, 1e-6)
        Scan.objects.filter(pk=scan.pk).update(
            status="completed",
            progress=100.0,
            eta_seconds=0,
            files_total=writer.position,
            files_done=writer.position,
            bytes_done=writer.bytes,
            files_per_second=round(writer.position / elapsed, 1),
            summary=scan_summary(scan=scan),
            failed_sources=failed,
            finished_at=now,
        )
        # Only the latest results are kept: the Full list and fine-tuning read the latest scan.
        project.scans.filter(status__in=("completed", "failed"), pk__lt=scan.pk).delete()
    scan.refresh_from_db()
    publish(group, {"type": "scan", "scan": scan_state(scan)})


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _most_common_code_type(scan: Scan) -> list[str]:
    counts = Counter(
        scan.files.exclude(read_reason__in=(LINGUIST_ERROR, NOT_TEXT, NOT_CODE))
        .exclude(file_type="")
        .values_list("file_type", flat=True)
        .iterator(5000)
    )
    return [counts.most_common(1)[0][0]] if counts else []


def _spec(text: str) -> pathspec.PathSpec | None:
    lines = [line for line in text.splitlines() if line.strip()]
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def final_reason(
    *,
    read_reason: str,
    is_duplicate: bool,
    file_type: str,
    shown_path: str,
    path: str,
    include: pathspec.PathSpec | None,
    exclude: pathspec.PathSpec | None,
    selection: set[str],
) -> str:
    if read_reason in UNRECOVERABLE_REASONS:
        return read_reason
    if include is not None and (include.match_file(shown_path) or include.match_file(path)):
        return ""
    if read_reason:
        return read_reason
    if is_duplicate:
        return DUPLICATES
    if exclude is not None and (exclude.match_file(shown_path) or exclude.match_file(path)):
        return EXCLUDED_BY_MASK
    if file_type not in selection:
        return TYPE_OFF
    return ""


def evaluate(*, scan: Scan, project: Project) -> int:
    """Re-compute every file's final reason from what was read (no file is opened); returns changes."""
    include, exclude = _spec(project.include_masks), _spec(project.exclude_masks)
    selection = set(project.type_selection or [])
    changes: dict[str, list[int]] = {}
    rows = scan.files.values_list("id", "source__name", "path", "file_type", "read_reason", "is_duplicate", "reason")
    for pk, source_name, path, file_type, read_reason, is_duplicate, reason in rows.iterator(5000):
        new = final_reason(
            read_reason=read_reason,
            is_duplicate=is_duplicate,
            file_type=file_type,
            shown_path=f"{source_name}/{path}",
            path=path,
            include=include,
            exclude=exclude,
            selection=selection,
        )
        if new != reason:
            changes.setdefault(new, []).append(pk)
    changed = 0
    for reason, ids in changes.items():
        for chunk in _chunks(ids, BATCH):
            changed += ScannedFile.objects.filter(pk__in=chunk).update(reason=reason)
    if changed:
        Scan.objects.filter(pk=scan.pk).update(summary=scan_summary(scan=scan))
    return changed


def scan_summary(*, scan: Scan) -> dict[str, object]:
    counts = Counter(scan.files.values_list("reason", flat=True).iterator(5000))
    return {
        "accepted": counts.get("", 0),
        "rejected": {reason: counts.get(reason, 0) for reason in REASONS},
    }


def scan_state(scan: Scan) -> dict[str, object]:
    return {
        "id": scan.pk,
        "project": scan.project_id,
        "status": scan.status,
        "progress": round(scan.progress, 1),
        "files_total": scan.files_total,
        "files_done": scan.files_done,
        "files_per_second": scan.files_per_second,
        "eta_seconds": scan.eta_seconds,
        "error": scan.error,
        "summary": scan.summary,
        "failed_sources": scan.failed_sources,
    }
