"""Hostile archives through the real pipeline: uploaded as a source, unpacked by a scan.

tests/projects/test_archives.py proves each refusal of the extractor on its own; here every hostile
archive goes through `source_add_upload` and a scan, and each case asserts what an attacker would
look for afterwards: a file outside the data directory, a half-unpacked tree, a staging directory
left behind, or a scan that crashed instead of naming the bad source.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from projects import scanning, services
from projects.archives import Limits, extract_archive
from projects.errors import SourceError
from projects.models import Source

SENTINEL = b"do not touch\n"


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode, format=tarfile.GNU_FORMAT) as bundle:
        for info, data in members:
            bundle.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def regular(name: str, data: bytes = b"print(1)\n") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def zip_bytes(members: list[tuple[str, bytes, int]]) -> bytes:
    """(name, data, unix mode) members; the mode goes where unzip reads it (external attributes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)
    return buffer.getvalue()


def lying_zip() -> bytes:
    """A zip whose headers declare 10 bytes for a member that inflates to a megabyte."""
    data = bytearray(zip_bytes([("small.py", b"x" * (1024 * 1024), stat.S_IFREG | 0o644)]))
    struct.pack_into("<I", data, 22, 10)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 10)  # central directory: uncompressed size
    return bytes(data)


def corrupt_zip() -> bytes:
    """Valid headers around deflate data that is garbage halfway through."""
    data = bytearray(zip_bytes([("a.py", b"def f():\n    return 1\n" * 4000, stat.S_IFREG | 0o644)]))
    start = 30 + len("a.py")  # the local header, then the name, then the deflate stream
    data[start] = 0xFF  # block type 3 does not exist: zlib raises its own error, not zipfile's
    return bytes(data)


def outside(tmp_path: Path) -> Path:
    return tmp_path / "outside"


# (id, builder(tmp_path) -> (file name, bytes), expected message)
HOSTILE: list[tuple[str, Callable[[Path], tuple[str, bytes]], str]] = [
    (
        "deep traversal",
        lambda t: ("a.tar", tar_bytes([regular("../" * 12 + "outside/pwned.py")])),
        r"escapes the archive \('\.\.' refused\)",
    ),
    ("traversal in the middle", lambda t: ("a.tgz", tar_bytes([regular("a/../../b.py")], "w:gz")), "escapes"),
    ("dot traversal in a zip", lambda t: ("a.zip", zip_bytes([("./../x.py", b"1", 0o100644)])), "escapes"),
    ("absolute path", lambda t: ("a.tar", tar_bytes([regular(str(outside(t) / "pwned.py"))])), "absolute path"),
    ("drive letter", lambda t: ("a.zip", zip_bytes([("C:/Windows/x.py", b"1", 0o100644)])), "absolute path"),
    (
        "symlink out, then a file through it",
        lambda t: (
            "a.tar",
            tar_bytes([special("link", tarfile.SYMTYPE, str(outside(t))), regular("link/pwned.py")]),
        ),
        "symbolic link escapes",
    ),
    (
        "relative symlink out",
        lambda t: ("a.tar.bz2", tar_bytes([special("d/l", tarfile.SYMTYPE, "../../../outside")], "w:bz2")),
        "symbolic link escapes",
    ),
    (
        "zip symlink out",
        lambda t: ("a.zip", zip_bytes([("l", b"../../../../outside", stat.S_IFLNK | 0o777)])),
        "symbolic link escapes",
    ),
    (
        "hard link to an absolute path",
        lambda t: ("a.tar", tar_bytes([special("h", tarfile.LNKTYPE, "/etc/passwd")])),
        "hard link escapes",
    ),
    (
        "hard link out by ..",
        lambda t: ("a.tar", tar_bytes([special("h", tarfile.LNKTYPE, "../../outside/secret")])),
        "hard link escapes",
    ),
    ("character device", lambda t: ("a.tar", tar_bytes([special("null", tarfile.CHRTYPE)])), "device"),
    ("block device", lambda t: ("a.tar", tar_bytes([special("sda", tarfile.BLKTYPE)])), "device"),
    ("fifo", lambda t: ("a.tar", tar_bytes([special("pipe", tarfile.FIFOTYPE)])), "device"),
    ("zip fifo", lambda t: ("a.zip", zip_bytes([("pipe", b"", stat.S_IFIFO | 0o644)])), "device"),
    (
        "gzip bomb by ratio",
        lambda t: ("bomb.tar.gz", tar_bytes([regular("zeros.py", b"\0" * (24 * 1024 * 1024))], "w:gz")),
        "decompression bomb",
    ),
    (
        "member count",
        lambda t: ("many.zip", zip_bytes([(f"f{i}.py", b"", 0o100644) for i in range(60)])),
        "more than 50 members",
    ),
    (
        "member count in a tar",
        lambda t: ("many.tar", tar_bytes([regular(f"f{i}.py", b"") for i in range(60)])),
        "more than 50 members",
    ),
    (
        "total size",
        lambda t: ("big.tar", tar_bytes([regular("random.bin", os.urandom(13 * 1024 * 1024))])),
        "expands to more than 12 MB",
    ),
    ("zip headers that lie about the size", lambda t: ("lie.zip", lying_zip()), "cannot be read"),
    ("corrupt deflate data", lambda t: ("corrupt.zip", corrupt_zip()), "cannot be read"),
    ("a name too long for the disk", lambda t: ("long.zip", zip_bytes([("n" * 300, b"1", 0o100644)])), "too long"),
    (
        "a path too deep for the disk",
        lambda t: ("deep.tar", tar_bytes([regular("d/" * 2100 + "f.py")])),
        "too long",
    ),
    (
        "a file, then a directory of the same name",
        lambda t: ("clash.zip", zip_bytes([("a", b"1", 0o100644), ("a/b.py", b"2", 0o100644)])),
        "appears twice|not a directory",
    ),
    (
        "truncated tar.gz",
        lambda t: ("cut.tar.gz", tar_bytes([regular("a.py", os.urandom(50_000))], "w:gz")[:9000]),
        "cannot be read",
    ),
    (
        "truncated zip",
        lambda t: ("cut.zip", zip_bytes([("a.py", os.urandom(50_000), 0o100644)])[:9000]),
        "not a readable",
    ),
    (
        "not an archive",
        lambda t: ("fake.tar.gz", gzip.compress(b"just text, not a tar")),
        "cannot be read|not a readable",
    ),
]


@pytest.fixture
def arena(settings, tmp_path: Path, db) -> Path:
    """tmp_path holds the data directory and, next to it, a directory an escape would write into."""
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    settings.REFACT_ARCHIVE_MAX_MEMBERS = 50
    settings.REFACT_ARCHIVE_MAX_MB = 12
    outside(tmp_path).mkdir()
    (outside(tmp_path) / "secret").write_bytes(SENTINEL)
    return tmp_path


def scan_upload(name: str, data: bytes):
    project = services.project_create(name="hostile-archive")
    source = services.source_add_upload(project=project, file_name=name, stream=io.BytesIO(data))
    scan = services.project_scan_start(project=project)
    scanning.scan_run(scan_id=scan.pk)
    scan.refresh_from_db()
    source.refresh_from_db()
    return scan, source


def assert_nothing_escaped(arena: Path) -> None:
    assert sorted(path.name for path in arena.iterdir()) == ["data", "outside"]
    assert sorted(path.name for path in outside(arena).iterdir()) == ["secret"]
    assert (outside(arena) / "secret").read_bytes() == SENTINEL
    data = arena / "data"
    for path in data.rglob("*"):
        assert not path.is_symlink(), path
        assert not path.name.startswith((".extract-", ".clone-")), f"staging left behind: {path}"
        assert path.resolve().is_relative_to(data.resolve()), path


@pytest.mark.parametrize(("name", "build", "message"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_a_hostile_archive_fails_its_source_cleanly(arena, name, build, message) -> None:
    file_name, data = build(arena)
    scan, source = scan_upload(file_name, data)
    # The scan itself completes and names the bad source; it does not crash.
    assert scan.status == "completed", (scan.status, scan.error)
    assert source.status == Source.Status.FAILED
    assert re.search(message, source.error), source.error
    assert str(arena / "data") not in source.error  # the data directory is never shown
    assert scan.failed_sources == [{"source": source.name, "error": source.error}]
    assert not scanning.source_tree(source).exists()  # no half-unpacked tree
    assert_nothing_escaped(arena)


def test_a_zip_member_with_an_empty_name_is_skipped_not_a_crash(arena) -> None:
    scan, source = scan_upload("empty-name.zip", zip_bytes([("", b"x", 0o100644), ("ok.py", b"1\n", 0o100644)]))
    assert scan.status == "completed" and source.status == Source.Status.READY, (scan.error, source.error)
    assert list(scan.files.values_list("path", flat=True)) == ["ok.py"]
    assert_nothing_escaped(arena)


def test_odd_but_harmless_names_land_inside_and_are_stored(arena) -> None:
    """Non-UTF-8 bytes, backslashes, control characters: unpacked inside the tree, stored as valid text."""
    members = [
        regular("caf\udce9.py"),  # latin-1 é: not UTF-8
        regular("..\\..\\outside\\win.py"),  # a backslash is not a separator on this server
        regular("tab\tand\nnewline.py"),
        regular("ok.py"),
    ]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, errors="surrogateescape") as bundle:
        for info, data in members:
            bundle.addfile(info, io.BytesIO(data))
    scan, source = scan_upload("odd.tar", buffer.getvalue())
    assert scan.status == "completed" and source.status == Source.Status.READY, (scan.error, source.error)
    paths = sorted(scan.files.values_list("path", flat=True))
    assert "ok.py" in paths and len(paths) == 4
    assert all(path.encode("utf-8") for path in paths)
    assert_nothing_escaped(arena)


def test_a_refused_archive_leaves_the_earlier_tree_as_it_was(arena) -> None:
    target = arena / "data" / "tree"
    good = arena / "good.tar"
    good.write_bytes(tar_bytes([regular("keep.py", b"kept\n")]))
    extract_archive(archive=good, target=target)
    bad = arena / "data" / "bad.tar"
    bad.write_bytes(tar_bytes([regular("new.py"), regular("../escape.py")]))
    with pytest.raises(SourceError, match="escapes"):
        extract_archive(archive=bad, target=target, limits=Limits(max_members=10, max_bytes=10**6, max_ratio=100))
    assert sorted(path.name for path in target.iterdir()) == ["keep.py"]
    assert (target / "keep.py").read_bytes() == b"kept\n"
    good.unlink()
    bad.unlink()
    assert_nothing_escaped(arena)
