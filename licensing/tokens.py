"""License tokens: pure functions over `cryptography` (no Django), so settings and tools may import them.

Token: `RFXL1.<payload>.<signature>.<checksum>`, each part base64url without padding.
- payload: canonical JSON {lid, customer, seats, features, iat, nbf, exp, kid} (dates ISO 8601 UTC)
- signature: Ed25519 over `RFXL1.<payload>` with the vendor key named by `kid`
- checksum: first 8 bytes of SHA-256 over `RFXL1.<payload>.<signature>`; not a security measure, it
  lets the server tell a damaged or edited token ("tampered") from one signed by another key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER = "RFXL1"
# The product's own vendor key (public half only; the private key never ships).
PRODUCT_PUBLIC_KEYS = "refact-2026:JxitHc7N4a4XV8UbCQ77js80rfoAPVUCVRC76Bxmnmw="
DEFAULT_FEATURES = ("users", "teams", "team_preferences", "usage")
# A real token is about 400 characters; anything far longer is refused before it is hashed or parsed.
MAX_TOKEN_CHARS = 8192
MAX_SEATS = 1_000_000


class LicenseError(ValueError):
    """The token is refused; the message says why."""

    reason = "invalid"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason:
            self.reason = reason


@dataclass(frozen=True)
class LicensePayload:
    lid: str
    customer: str
    seats: int
    iat: datetime
    nbf: datetime
    exp: datetime
    kid: str
    features: tuple[str, ...] = field(default=DEFAULT_FEATURES)

    def as_json(self) -> dict:
        return {
            "lid": self.lid,
            "customer": self.customer,
            "seats": self.seats,
            "features": list(self.features),
            "iat": _iso(self.iat),
            "nbf": _iso(self.nbf),
            "exp": _iso(self.exp),
            "kid": self.kid,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _checksum(signed_and_signature: str) -> str:
    return _b64e(hashlib.sha256(signed_and_signature.encode()).digest()[:8])


def parse_public_keys(value: str) -> dict[str, Ed25519PublicKey]:
    """`kid:base64-of-raw-32-byte-key[,kid:...]` -> {kid: key}; ValueError naming the bad entry."""
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in (item.strip() for item in value.split(",")):
        if not entry:
            continue
        kid, colon, encoded = entry.partition(":")
        kid = kid.strip()
        if not colon or not kid:
            raise ValueError(f"entry {entry!r}: expected kid:base64-of-raw-32-byte-key")
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"key {kid!r}: not valid base64") from None
        if len(raw) != 32:
            raise ValueError(f"key {kid!r}: expected 32 bytes (raw Ed25519 public key), got {len(raw)}")
        if kid in keys:
            raise ValueError(f"key {kid!r}: listed twice")
        keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"cannot read the private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the private key is not an Ed25519 key")
    return key


def issue(
    *,
    private_key: Ed25519PrivateKey,
    kid: str,
    customer: str,
    seats: int,
    days: int,
    features: tuple[str, ...] = DEFAULT_FEATURES,
    now: datetime | None = None,
    not_before: datetime | None = None,
    license_id: str | None = None,
) -> str:
    """A signed token (vendor side)."""
    if not kid or ":" in kid or "," in kid:
        raise ValueError("kid: must be non-empty without ':' or ','")
    if not customer.strip():
        raise ValueError("customer: must not be empty")
    if seats < 1:
        raise ValueError("seats: must be at least 1")
    if days < 1:
        raise ValueError("days: must be at least 1")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    payload = LicensePayload(
        lid=license_id or str(uuid.uuid4()),
        customer=customer.strip(),
        seats=seats,
        features=tuple(features),
        iat=now,
        nbf=(not_before or now).replace(microsecond=0),
        exp=now + timedelta(days=days),
        kid=kid,
    )
    body = _b64e(json.dumps(payload.as_json(), sort_keys=True, separators=(",", ":")).encode())
    signed = f"{HEADER}.{body}"
    signature = _b64e(private_key.sign(signed.encode()))
    return f"{signed}.{signature}.{_checksum(f'{signed}.{signature}')}"


def verify(token: str, *, trusted: dict[str, Ed25519PublicKey], now: datetime | None = None) -> LicensePayload:
    """The payload of a valid token; LicenseError saying why otherwise (dates checked last)."""
    payload = decode_unverified(token)
    public_key = trusted.get(payload.kid)
    if public_key is None:
        raise LicenseError(
            f"License is signed with key id {payload.kid!r}, which this server does not trust "
            "(REFACT_LICENSE_PUBLIC_KEYS)",
            reason="unknown_key",
        )
    header, body, signature, _ = token.strip().split(".")
    try:
        public_key.verify(_b64d(signature), f"{header}.{body}".encode())
    except (InvalidSignature, binascii.Error, ValueError):
        raise LicenseError(
            f"License signature is not valid for key id {payload.kid!r}: it was not issued by that key",
            reason="bad_signature",
        ) from None
    check_dates(payload, now=now)
    return payload


def check_dates(payload: LicensePayload, *, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if now < payload.nbf:
        raise LicenseError(f"License is not valid yet: it starts on {_iso(payload.nbf)}", reason="not_yet_valid")
    if now >= payload.exp:
        raise LicenseError(f"License expired on {_iso(payload.exp)}", reason="expired")


def decode_unverified(token: str) -> LicensePayload:
    """Parse and checksum-check the token; nothing here is trusted until `verify` checks the signature."""
    tampered = "License token is damaged or was tampered with"
    if not isinstance(token, str):
        raise LicenseError(f"{tampered}: expected text", reason="tampered")
    if len(token) > MAX_TOKEN_CHARS:
        raise LicenseError(f"{tampered}: longer than {MAX_TOKEN_CHARS} characters", reason="tampered")
    parts = token.strip().split(".")
    if len(parts) != 4 or parts[0] != HEADER:
        raise LicenseError(f"{tampered}: expected {HEADER}.<payload>.<signature>.<checksum>", reason="tampered")
    header, body, signature, checksum = parts
    if not hmac.compare_digest(_checksum(f"{header}.{body}.{signature}").encode(), checksum.encode()):
        raise LicenseError(f"{tampered} (its checksum does not match)", reason="tampered")
    try:
        data = json.loads(_b64d(body))
        if not isinstance(data, dict):
            raise TypeError("the payload is not an object")
        seats = data["seats"]
        if isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= MAX_SEATS:
            raise ValueError("seats")
        features = data.get("features", list(DEFAULT_FEATURES))
        if not isinstance(features, list):
            raise TypeError("features")
        payload = LicensePayload(
            lid=str(data["lid"])[:100],
            customer=str(data["customer"])[:200],
            seats=seats,
            features=tuple(str(f) for f in features),
            iat=_parse_time(data["iat"]),
            nbf=_parse_time(data.get("nbf", data["iat"])),
            exp=_parse_time(data["exp"]),
            kid=str(data["kid"])[:100],
        )
    # Overflow: a date at the edge of the calendar; recursion: JSON nested thousands deep.
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError, binascii.Error):
        raise LicenseError(f"{tampered} (its payload cannot be read)", reason="tampered") from None
    return payload


def _parse_time(text: str) -> datetime:
    if not isinstance(text, str):
        raise TypeError("a time must be text")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("naive time")
    # In UTC, so that comparing and printing can never leave the calendar (year 1 at +23:59...).
    return moment.astimezone(UTC)
