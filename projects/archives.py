"""The one door for archives: nothing lands outside the target directory, and the caps hold while
extracting (counted on the bytes actually written, never on what the headers claim).

Extraction goes to a fresh directory next to the target and replaces it only when complete, so a
refused archive leaves the earlier result untouched.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings

from projects.errors import SourceError

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar")
CHUNK = 1024 * 1024
# Below this many bytes the ratio cap is not applied: tiny archives of text compress very well.
RATIO_GRACE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_members: int
    max_bytes: int
    max_ratio: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            max_members=settings.REFACT_ARCHIVE_MAX_MEMBERS,
            max_bytes=settings.REFACT_ARCHIVE_MAX_MB * 1024 * 1024,
            max_ratio=settings.REFACT_ARCHIVE_MAX_RATIO,
        )


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def safe_member_path(raw_name: str) -> PurePosixPath:
    """The member's relative path, or SourceError for absolute paths and `..` (zip-slip)."""
    # Undecodable bytes (surrogate escapes) become visible \\xNN text, so names stay valid UTF-8.
    name = raw_name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if "\x00" in name:
        raise SourceError(f"archive member {name!r}: NUL in the name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise SourceError(f"archive member {name!r}: absolute path refused")
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if ".." in parts:
        raise SourceError(f"archive member {name!r}: path escapes the archive ('..' refused)")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def link_target_escapes(member: PurePosixPath, target: str, *, relative_to_member: bool) -> bool:
    """Whether a link at `member` pointing to `target` resolves outside the archive root."""
    if target.startswith("/"):
        return True
    base = list(member.parent.parts) if relative_to_member else []
    for part in PurePosixPath(target).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not base:
                return True
            base.pop()
        else:
            base.append(part)
    return False


class _Budget:
    def __init__(self, limits: Limits, archive_size: int) -> None:
        self.limits = limits
        self.archive_size = max(archive_size, 1)
        self.members = 0
        self.written = 0

    def member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise SourceError(f"archive has more than {self.limits.max_members} members (REFACT_ARCHIVE_MAX_MEMBERS)")

    def add(self, count: int) -> None:
        self.written += count
        if self.written > self.limits.max_bytes:
            raise SourceError(
                f"archive expands to more than {self.limits.max_bytes // (1024 * 1024)} MB (REFACT_ARCHIVE_MAX_MB)"
            )
        if self.written > RATIO_GRACE_BYTES and self.written / self.archive_size > self.limits.max_ratio:
            raise SourceError(
                f"archive expands more than {self.limits.max_ratio} times its size: refused as a "
                "decompression bomb (REFACT_ARCHIVE_MAX_RATIO)"
            )


def _copy(stream: IO[bytes], destination: Path, budget: _Budget) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL|O_NOFOLLOW: never write through a link or over a member written earlier.
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        while chunk := stream.read(CHUNK):
            budget.add(len(chunk))
            out.write(chunk)


def _extract_zip(archive: Path, root: Path, budget: _Budget) -> None:
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise SourceError(f"not a readable zip archive: {error}") from None
    with bundle:
        for info in bundle.infolist():
            budget.member()
            relative = safe_member_path(info.filename)
            try:
                _unpack_zip_member(bundle, info, relative, root, budget)
            except FileExistsError:
                raise SourceError(f"archive member {_shown(relative)!r}: appears twice") from None
            except (
                zipfile.BadZipFile,
                EOFError,
                NotImplementedError,
                RuntimeError,
                zlib.error,
                lzma.LZMAError,
            ) as error:
                raise SourceError(f"archive member {_shown(relative)!r}: cannot be read: {error}") from None
            except OSError as error:
                if error.errno is None:  # bz2's "Invalid data stream": the archive, not the disk
                    raise SourceError(f"archive member {_shown(relative)!r}: cannot be read: {error}") from None
                raise _unwritable(relative, error) from None


def _unpack_zip_member(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, relative: PurePosixPath, root: Path, budget: _Budget
) -> None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        target = bundle.read(info)[:4096].decode("utf-8", "replace")
        if link_target_escapes(relative, target, relative_to_member=True):
            raise SourceError(f"archive member {_shown(relative)!r}: symbolic link escapes the archive")
        return  # links inside the tree are not materialized: the scan never follows links
    if mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        raise SourceError(f"archive member {_shown(relative)!r}: device or special file refused")
    # zipfile's is_dir() fails on an empty name (a hostile archive may carry one): read the name ourselves.
    if str(relative) == "." or info.filename.endswith("/"):
        (root / relative).mkdir(parents=True, exist_ok=True)
        return
    with bundle.open(info) as stream:
        _copy(stream, root / relative, budget)


def _shown(relative: PurePosixPath) -> str:
    """A member's name for a message: never the server's own path, never a page long."""
    text = str(relative)
    return text if len(text) <= 120 else text[:100] + "..." + text[-17:]


def _unwritable(relative: PurePosixPath, error: OSError) -> SourceError:
    # strerror only: the full error names the server's data directory.
    reason = error.strerror or type(error).__name__
    if isinstance(error, NotADirectoryError | FileExistsError):
        reason = "it clashes with another member of the same name (a file and a directory, or twice)"
    return SourceError(f"archive member {_shown(relative)!r}: cannot be unpacked: {reason}")


def _extract_tar(archive: Path, root: Path, budget: _Budget) -> None:
    try:
        # Stream mode: members are read in order, so a compressed stream is never re-read from the start.
        bundle = tarfile.open(archive, mode="r|*", encoding="utf-8", errors="surrogateescape")
    except (tarfile.TarError, OSError) as error:
        raise SourceError(f"not a readable tar archive: {error}") from None
    with bundle:
        try:
            for member in bundle:
                budget.member()
                relative = safe_member_path(member.name)
                try:
                    _unpack_tar_member(bundle, member, relative, root, budget)
                except FileExistsError:
                    raise SourceError(f"archive member {_shown(relative)!r}: appears twice") from None
                except OSError as error:
                    if error.errno is None:
                        raise  # a decompressor's complaint about the stream, not the disk: reported below
                    raise _unwritable(relative, error) from None
        except (tarfile.TarError, EOFError, OSError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise SourceError(f"archive cannot be read: {reason}") from None


def _unpack_tar_member(
    bundle: tarfile.TarFile, member: tarfile.TarInfo, relative: PurePosixPath, root: Path, budget: _Budget
) -> None:
    if member.isdir() or str(relative) == ".":
        (root / relative).mkdir(parents=True, exist_ok=True)
    elif member.issym():
        if link_target_escapes(relative, member.linkname, relative_to_member=True):
            raise SourceError(f"archive member {_shown(relative)!r}: symbolic link escapes the archive")
    elif member.islnk():
        if link_target_escapes(relative, member.linkname, relative_to_member=False):
            raise SourceError(f"archive member {_shown(relative)!r}: hard link escapes the archive")
        source = root / safe_member_path(member.linkname)
        if source.is_file() and not source.is_symlink():
            # A copy, not a link: each extracted file is its own inode inside root.
            with source.open("rb") as stream:
                _copy(stream, root / relative, budget)
    elif member.isfile():
        stream = bundle.extractfile(member)
        if stream is None:
            raise SourceError(f"archive member {_shown(relative)!r}: cannot be read")
        _copy(stream, root / relative, budget)
    elif member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise SourceError(f"archive member {_shown(relative)!r}: device or special file refused")


def extract_archive(*, archive: Path, target: Path, limits: Limits | None = None) -> None:
    """Unpack `archive` into `target` (replaced only on success); SourceError on any refusal."""
    limits = limits or Limits.from_settings()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        budget = _Budget(limits, archive.stat().st_size)
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, staging, budget)
        else:
            _extract_tar(archive, staging, budget)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
