"""The archive door: every supported format, and every refusal, on real archives built here."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from projects.archives import Limits, extract_archive
from projects.errors import SourceError

FILES = {"pkg/main.py": b"print('hi')\n", "README.md": b"# readme\n"}


def make_tar(path: Path, mode: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, mode) as bundle:
        for info, data in members:
            bundle.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_info(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def regular_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [file_info(name, data) for name, data in FILES.items()]


@pytest.mark.parametrize(
    ("name", "mode"), [("a.tar", "w"), ("a.tar.gz", "w:gz"), ("a.tgz", "w:gz"), ("a.tar.bz2", "w:bz2")]
)
def test_tar_formats_extract(tmp_path: Path, name: str, mode: str) -> None:
    archive = make_tar(tmp_path / name, mode, regular_members())
    extract_archive(archive=archive, target=tmp_path / "out")
    assert {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()} == set(FILES)
    assert (tmp_path / "out" / "pkg" / "main.py").read_bytes() == FILES["pkg/main.py"]


def test_zip_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in FILES.items():
            bundle.writestr(name, data)
    extract_archive(archive=archive, target=tmp_path / "out")
    assert (tmp_path / "out" / "README.md").read_bytes() == FILES["README.md"]


def refused(tmp_path: Path, archive: Path, message: str, limits: Limits | None = None) -> None:
    target = tmp_path / "out"
    target.mkdir(exist_ok=True)
    (target / "earlier.py").write_text("kept\n")
    with pytest.raises(SourceError, match=message):
        extract_archive(archive=archive, target=target, limits=limits)
    # Earlier results untouched, nothing written outside, no staging left behind.
    assert (target / "earlier.py").read_text() == "kept\n"
    assert not (tmp_path / "evil.py").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".extract-")] == []


def test_traversal_refused_tar(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "t.tar", "w", [*regular_members(), file_info("../evil.py", b"x")])
    refused(tmp_path, archive, r"'\.\.' refused")


def test_traversal_refused_zip(tmp_path: Path) -> None:
    archive = tmp_path / "t.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ok.py", b"x")
        bundle.writestr("a/../../evil.py", b"x")
    refused(tmp_path, archive, r"'\.\.' refused")


def test_absolute_path_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "t.tar", "w", [file_info("/tmp/evil.py", b"x")])
    refused(tmp_path, archive, "absolute path refused")


def test_symlink_escape_refused_tar(tmp_path: Path) -> None:
    link = tarfile.TarInfo("pkg/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../etc/passwd"
    archive = make_tar(tmp_path / "t.tar", "w", [(link, None)])
    refused(tmp_path, archive, "symbolic link escapes")


def test_symlink_then_write_through_refused(tmp_path: Path) -> None:
    """A link to an absolute directory followed by a file 'inside' it: the link is refused first."""
    link = tarfile.TarInfo("dir")
    link.type = tarfile.SYMTYPE
    link.linkname = str(tmp_path)
    archive = make_tar(tmp_path / "t.tar", "w", [(link, None), file_info("dir/evil.py", b"x")])
    refused(tmp_path, archive, "symbolic link escapes")


def test_symlink_escape_refused_zip(tmp_path: Path) -> None:
    archive = tmp_path / "t.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(info, "/etc/passwd")
    refused(tmp_path, archive, "symbolic link escapes")


def test_inner_links_are_not_materialized(tmp_path: Path) -> None:
    link = tarfile.TarInfo("pkg/alias.py")
    link.type = tarfile.SYMTYPE
    link.linkname = "main.py"
    hard = tarfile.TarInfo("pkg/copy.py")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "pkg/main.py"
    archive = make_tar(tmp_path / "t.tar", "w", [*regular_members(), (link, None), (hard, None)])
    extract_archive(archive=archive, target=tmp_path / "out")
    assert not (tmp_path / "out" / "pkg" / "alias.py").exists()
    copy = tmp_path / "out" / "pkg" / "copy.py"
    assert copy.read_bytes() == FILES["pkg/main.py"] and not copy.is_symlink()


def test_hardlink_escape_refused(tmp_path: Path) -> None:
    hard = tarfile.TarInfo("pkg/passwd")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "../etc/passwd"
    archive = make_tar(tmp_path / "t.tar", "w", [(hard, None)])
    refused(tmp_path, archive, "hard link escapes")


def test_device_refused(tmp_path: Path) -> None:
    device = tarfile.TarInfo("dev/sda")
    device.type = tarfile.BLKTYPE
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    refused(tmp_path, make_tar(tmp_path / "d.tar", "w", [(device, None)]), "device or special file")
    refused(tmp_path, make_tar(tmp_path / "f.tar", "w", [(fifo, None)]), "device or special file")


def test_member_count_cap(tmp_path: Path) -> None:
    members = [file_info(f"f{index}.py", b"x") for index in range(20)]
    archive = make_tar(tmp_path / "many.tar", "w", members)
    refused(tmp_path, archive, "more than 10 members", Limits(max_members=10, max_bytes=10**9, max_ratio=100))


def test_zip_bomb_refused_by_ratio_while_extracting(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        with bundle.open("zeros.py", "w") as member:
            for _ in range(64):
                member.write(b"\0" * (1024 * 1024))
    assert archive.stat().st_size < 200_000
    refused(tmp_path, archive, "decompression bomb", Limits(max_members=100, max_bytes=10**10, max_ratio=50))


def test_total_size_cap(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "big.tar.gz", "w:gz", [file_info("big.py", b"a" * (3 * 1024 * 1024))])
    refused(tmp_path, archive, "more than 2 MB", Limits(max_members=100, max_bytes=2 * 1024 * 1024, max_ratio=10**6))


def test_non_utf8_names(tmp_path: Path) -> None:
    archive = tmp_path / "latin.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as bundle:
        info, data = file_info("caf\xe9.py", b"x = 1\n")
        bundle.addfile(info, io.BytesIO(data))
    extract_archive(archive=archive, target=tmp_path / "out")
    names = [p.name for p in (tmp_path / "out").iterdir()]
    assert names == ["caf\\xe9.py"]
    names[0].encode("utf-8")  # stored names are always valid text


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not an archive at all")
    refused(tmp_path, junk, "not a readable tar archive")
