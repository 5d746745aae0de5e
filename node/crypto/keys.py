"""X25519 encryption keys, and private-key files encrypted at rest.

Signing keys are in ``signing``; both kinds are stored as PKCS#8 PEM, encrypted
with the best available scheme when a passphrase is given, in files created
with mode 0600 before any key byte is written.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from node.crypto.sealing import x25519_public_bytes
from node.errors import CryptoError, KeyFileError
from node.limits import MAX_KEY_BYTES, read_limited


def write_private_pem(path: Path, pem: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def private_pem(key: X25519PrivateKey | Ed25519PrivateKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def read_key_file(path: Path) -> bytes:
    """A key, PEM or key bundle file someone hands over, whole, refused over
    ``MAX_KEY_BYTES`` before it is parsed. Missing or unreadable is a
    KeyFileError naming the file."""
    try:
        return read_limited(path, limit=MAX_KEY_BYTES, what="a key file", error=KeyFileError)
    except FileNotFoundError as exc:
        raise KeyFileError("no such file", file=str(path)) from exc


def read_key_text(path: Path) -> str:
    """``read_key_file`` as ASCII text (PEM)."""
    data = read_key_file(path)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise KeyFileError("not ASCII: not a PEM key", file=str(path), line=line) from exc


def load_private_pem(path: Path, passphrase: bytes | None) -> object:
    """Load a PEM private key; errors say what to do, never echo key material."""
    try:
        data = read_limited(path, limit=MAX_KEY_BYTES, what="a key file", error=KeyFileError)
    except FileNotFoundError as exc:
        raise CryptoError(f"private key not found: {path}") from exc
    if b"ENCRYPTED PRIVATE KEY" in data[:64] and not passphrase:
        raise CryptoError(
            f"{path} is encrypted at rest: set CORREDOR_KEY_PASSPHRASE or enter the passphrase"
        )
    try:
        return serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:
        raise CryptoError(f"cannot load {path}: {exc}") from exc
    except ValueError as exc:
        raise CryptoError(f"cannot load {path}: wrong passphrase or damaged file") from exc


def x25519_key_id(country: str, public: X25519PublicKey) -> str:
    return f"{country}:x:{hashlib.sha256(x25519_public_bytes(public)).hexdigest()[:16]}"


def x25519_public_pem(public: X25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_x25519_public_pem(pem: str | bytes) -> X25519PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, X25519PublicKey):
        raise CryptoError("public key is not X25519")
    return key


@dataclass(frozen=True)
class EncryptionKey:
    """A country's X25519 key for reading what is addressed to it."""

    country: str
    private: X25519PrivateKey

    @classmethod
    def generate(cls, country: str) -> EncryptionKey:
        return cls(country, X25519PrivateKey.generate())

    @property
    def public(self) -> X25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return x25519_key_id(self.country, self.public)

    def save(self, path: Path, passphrase: bytes | None = None) -> None:
        write_private_pem(path, private_pem(self.private, passphrase))

    @classmethod
    def load(cls, country: str, path: Path, passphrase: bytes | None = None) -> EncryptionKey:
        key = load_private_pem(path, passphrase)
        if not isinstance(key, X25519PrivateKey):
            raise CryptoError(f"{path} is not an X25519 private key")
        return cls(country, key)
