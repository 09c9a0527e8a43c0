"""Server-generated Ed25519 keys. The private key is encrypted with a key derived from SECRET_KEY
(so a database dump alone does not give access to the repositories)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from projects.errors import SourceError


@dataclass(frozen=True)
class GeneratedKey:
    public_key: str
    fingerprint: str
    private_key_encrypted: bytes


def _fernet() -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"refact.projects.ssh-keys").derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def fingerprint_of(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of an `ssh-ed25519 AAAA... comment` line."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def generate_key(*, comment: str) -> GeneratedKey:
    private = Ed25519PrivateKey.generate()
    public_line = (
        private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    )
    public_line = f"{public_line} {comment}".strip()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return GeneratedKey(
        public_key=public_line,
        fingerprint=fingerprint_of(public_line),
        private_key_encrypted=_fernet().encrypt(pem),
    )


def decrypt_private_key(encrypted: bytes) -> bytes:
    try:
        return _fernet().decrypt(bytes(encrypted))
    except InvalidToken:
        raise SourceError("the SSH key cannot be decrypted (was SECRET_KEY changed?); create a new key") from None
