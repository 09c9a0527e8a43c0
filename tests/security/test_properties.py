"""Property-based tests (hypothesis) of the three doors that parse hostile text: the URL guard, the
archive extractor and the license parser. Each property says what holds for every input, not just the
cases someone thought of: a refusal is always the door's own error type, and what is accepted is safe.

Examples are bounded and derandomized (the same examples on every run, nothing written to a
database), so the suite stays fast and a failure reproduces.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import string
import tarfile
import tempfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from licensing import tokens
from projects.archives import Limits, extract_archive
from projects.downloads import address_allowed, check_link_addresses, check_url
from projects.errors import SourceError
from projects.gitclient import parse_remote, remote_addresses
from tests.support.licenses import PRIVATE_KEY, TEST_KID

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

NON_PUBLIC_NETWORKS = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "::ffff:127.0.0.0/104",  # IPv4-mapped loopback
    "::ffff:10.0.0.0/104",
    "::ffff:169.254.0.0/112",
]

# Pieces attackers combine: separators, traversal, transports, option prefixes, odd characters.
URL_PIECES = st.sampled_from(
    [
        "https://",
        "ssh://",
        "http://",
        "file://",
        "ext::",
        "git@",
        "-",
        "--upload-pack=",
        "-o",
        "/",
        "..",
        ".",
        ":",
        "@",
        "[",
        "]",
        "::1",
        "%",
        "?",
        "#",
        "\\",
        " ",
        "\t",
        "\n",
        "\x00",
        "127.0.0.1",
        "localhost",
        "example.com",
        "0x7f.1",
        "2130706433",
        ":99999",
        ":22",
        "~",
        "é",
        "\u202e",
        "a",
        "repo.git",
        "x.zip",
    ]
)
URLISH = st.one_of(st.lists(URL_PIECES, max_size=8).map("".join), st.text(max_size=60))


# --- the URL guard ---------------------------------------------------------------------------


@BOUNDED
@given(URLISH)
def test_parse_remote_accepts_only_safe_remotes_and_refuses_with_its_own_error(url: str) -> None:
    try:
        remote = parse_remote(url, allow_local=False)
    except SourceError as error:
        assert error.field == "url" and error.message.startswith("url:")
        return
    assert remote.kind in ("https", "ssh")
    assert not remote.url.startswith("-")
    assert not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in remote.url)
    assert "::" not in remote.url.split("/", 1)[0]
    assert not remote.url.startswith(("file:", "ext:", "/", ".", "~"))


@BOUNDED
@given(URLISH)
def test_check_url_accepts_only_http_links_and_refuses_with_its_own_error(url: str) -> None:
    from urllib.parse import urlsplit

    try:
        checked = check_url(url)
    except SourceError as error:
        assert error.field == "url"
        return
    parts = urlsplit(checked)
    assert parts.scheme in ("http", "https") and parts.hostname
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in checked)


@BOUNDED
@given(st.sampled_from(NON_PUBLIC_NETWORKS).flatmap(lambda net: st.ip_addresses(network=net)))
def test_no_address_in_a_non_public_network_is_allowed(address) -> None:
    assert not address_allowed(str(address))


@BOUNDED
@given(st.ip_addresses())
def test_address_allowed_means_global_unicast(address) -> None:
    unwrapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else address
    assert address_allowed(str(address)) == (unwrapped.is_global and not unwrapped.is_multicast)


def literal_host(address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


@BOUNDED
@given(
    st.sampled_from(NON_PUBLIC_NETWORKS).flatmap(lambda net: st.ip_addresses(network=net)),
    st.sampled_from(["https://{host}/r.git", "ssh://git@{host}:2222/r", "https://u@{host}:8443/r"]),
)
def test_a_remote_at_a_non_public_literal_address_is_always_refused(address, template) -> None:
    try:
        remote = parse_remote(template.format(host=literal_host(address)), allow_local=False)
    except SourceError:
        return  # refused even earlier (an IPv6 literal in an https remote)
    with pytest.raises(SourceError, match="private, loopback or link-local"):
        remote_addresses(remote, allow_private=False)


@BOUNDED
@given(st.sampled_from(NON_PUBLIC_NETWORKS).flatmap(lambda net: st.ip_addresses(network=net)))
def test_a_link_to_a_non_public_literal_address_is_always_refused(address) -> None:
    with pytest.raises(SourceError, match="private, loopback or link-local"):
        check_link_addresses(f"http://{literal_host(address)}:8080/code.zip")


@BOUNDED
@given(st.ip_addresses(v=4).filter(lambda a: a.is_global and not a.is_multicast))
def test_a_remote_at_a_public_literal_address_is_pinned_to_that_address(address) -> None:
    remote = parse_remote(f"https://{address}/r.git", allow_local=False)
    assert remote_addresses(remote, allow_private=False) == [str(address)]


# --- the archive extractor -------------------------------------------------------------------

SEGMENTS = st.sampled_from(["a", "b", "c.py", "..", ".", "", "\\..", "C:", "é", "x" * 40, "\udcff"])
NAMES = st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join)
LEADS = st.sampled_from(["", "", "", "/", "./", "../"])
MEMBER = st.tuples(
    st.sampled_from(["file", "file", "dir", "symlink", "hardlink", "fifo"]),
    st.tuples(LEADS, NAMES).map("".join),
    st.one_of(st.tuples(LEADS, NAMES).map("".join), st.just("/etc/passwd"), st.just("../../outside")),
    st.binary(max_size=64),
)


def build_tar(members: list[tuple[str, str, str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT, errors="surrogateescape") as bundle:
        for kind, name, target, data in members:
            info = tarfile.TarInfo(name)
            payload = None
            if kind == "file":
                info.size, payload = len(data), io.BytesIO(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, target
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, target
            else:
                info.type = tarfile.FIFOTYPE
            bundle.addfile(info, payload)
    return buffer.getvalue()


def build_zip(members: list[tuple[str, str, str, bytes]]) -> bytes:
    import stat

    modes = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "hardlink": stat.S_IFREG}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for kind, name, target, data in members:
            info = zipfile.ZipInfo(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            info.external_attr = (modes.get(kind, stat.S_IFIFO) | 0o644) << 16
            bundle.writestr(info, target.encode("utf-8", "replace") if kind == "symlink" else data)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # duplicates are part of the attack
@settings(BOUNDED, max_examples=120)
@given(st.lists(MEMBER, min_size=1, max_size=6), st.sampled_from(["tar", "zip"]))
@example([("file", "", "", b"x")], "zip")  # found by this test: an empty zip name crashed zipfile's is_dir()
def test_extraction_never_writes_outside_and_never_leaves_a_partial_tree(members, kind) -> None:
    with tempfile.TemporaryDirectory(prefix="refact-property-") as scratch:
        root = Path(scratch)
        (root / "outside").mkdir()
        (root / "outside" / "secret").write_text("untouched")
        sandbox = root / "a" / "b" / "c"  # deep enough that ../../ escapes still land in root
        sandbox.mkdir(parents=True)
        archive = root / f"archive.{kind}"
        try:
            archive.write_bytes(build_tar(members) if kind == "tar" else build_zip(members))
        except (ValueError, UnicodeError, tarfile.TarError):
            assume(False)  # a name the archive format itself cannot hold
        target = sandbox / "tree"
        limits = Limits(max_members=5, max_bytes=256, max_ratio=1000)
        try:
            extract_archive(archive=archive, target=target, limits=limits)
            succeeded = True
        except SourceError:
            succeeded = False
        assert sorted(p.name for p in sandbox.iterdir()) == (["tree"] if succeeded else [])
        assert sorted(p.name for p in (root / "outside").iterdir()) == ["secret"]
        assert (root / "outside" / "secret").read_text() == "untouched"
        everything = {str(p.relative_to(root)) for p in root.rglob("*")}
        allowed_prefixes = ("outside", "a", f"archive.{kind}")
        assert all(path.split("/", 1)[0] in allowed_prefixes for path in everything), everything
        assert {p for p in everything if p.startswith("a/") and not p.startswith("a/b")} == set()
        if succeeded:
            for path in target.rglob("*"):
                assert not path.is_symlink() and (path.is_file() or path.is_dir()), path
                assert path.resolve().is_relative_to(target.resolve()), path
            total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            assert total <= limits.max_bytes


# --- the license parser ----------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
    st.datetimes().map(lambda moment: moment.isoformat()),  # naive
    JSON_VALUES,
)
# Mostly well-formed fields, so that the odd value in one of them is what the parser meets.
FIELDS = st.fixed_dictionaries(
    {
        "lid": st.one_of(st.uuids().map(str), JSON_VALUES),
        "customer": st.one_of(st.text(max_size=20), JSON_VALUES),
        "seats": st.one_of(st.integers(), st.floats(), st.text(max_size=5), JSON_VALUES),
        "iat": TIMES,
        "exp": TIMES,
        "kid": st.one_of(st.just(TEST_KID), JSON_VALUES),
    },
    optional={"features": st.one_of(st.lists(st.text(max_size=8), max_size=3), JSON_VALUES), "nbf": TIMES},
)


def trusted() -> dict:
    return {TEST_KID: PRIVATE_KEY.public_key()}


def with_checksum(payload: bytes, signature: str = "c2ln") -> str:
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"RFXL1.{body}.{signature}.{tokens._checksum(f'RFXL1.{body}.{signature}')}"


@BOUNDED
@given(st.one_of(st.text(max_size=300), st.lists(URL_PIECES | st.just("RFXL1."), max_size=6).map("".join)))
def test_any_text_is_a_license_or_a_license_error(text: str) -> None:
    try:
        tokens.verify(text, trusted=trusted())
    except tokens.LicenseError as error:
        assert error.reason in ("tampered", "unknown_key", "bad_signature", "expired", "not_yet_valid")


@BOUNDED
@given(FIELDS)
def test_any_payload_with_a_valid_checksum_is_parsed_or_refused_as_tampered(fields) -> None:
    try:
        raw = json.dumps(fields).encode()
    except (ValueError, TypeError):
        assume(False)
    try:
        payload = tokens.decode_unverified(with_checksum(raw))
    except tokens.LicenseError as error:
        assert error.reason == "tampered"
        return
    assert isinstance(payload.seats, int) and 1 <= payload.seats <= tokens.MAX_SEATS
    assert payload.exp.tzinfo is not None and payload.nbf.tzinfo is not None
    with pytest.raises(tokens.LicenseError):
        tokens.verify(with_checksum(raw), trusted=trusted())  # no signature: never accepted


@BOUNDED
@given(
    customer=st.text(string.ascii_letters + " ", min_size=1, max_size=30).filter(str.strip),
    seats=st.integers(1, 10_000),
    days=st.integers(1, 3650),
    position=st.integers(min_value=0),
    replacement=st.sampled_from("AaZz09-_.=é"),
)
def test_a_signed_token_verifies_and_any_one_character_changed_is_refused(customer, seats, days, position, replacement):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    token = tokens.issue(private_key=PRIVATE_KEY, kid=TEST_KID, customer=customer, seats=seats, days=days, now=now)
    payload = tokens.verify(token, trusted=trusted(), now=now + timedelta(seconds=1))
    assert (payload.customer, payload.seats, payload.exp) == (customer.strip(), seats, now + timedelta(days=days))
    index = position % len(token)
    assume(token[index] != replacement)
    changed = token[:index] + replacement + token[index + 1 :]
    try:
        forged = tokens.verify(changed, trusted=trusted(), now=now + timedelta(seconds=1))
    except tokens.LicenseError as error:
        assert error.reason in ("tampered", "bad_signature", "unknown_key")
    else:
        # Base64 has spare bits: a change there decodes to the same bytes, the same signed license.
        assert forged == payload
