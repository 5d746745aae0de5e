"""Ed25519 signing keys: generation, PEM storage, key ids, sign and verify."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from node.crypto.keys import load_private_pem, private_pem, write_private_pem
from node.errors import CryptoError, SignatureInvalid


def key_id_for(country: str, public: Ed25519PublicKey) -> str:
    """``<ISO3>:<first 16 hex of SHA-256 of the raw public key>``."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{country}:{hashlib.sha256(raw).hexdigest()[:16]}"


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_pem(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CryptoError("public key is not Ed25519")
    return key


@dataclass(frozen=True)
class SigningKey:
    """A country's Ed25519 private key and its id."""

    country: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, country: str) -> SigningKey:
        return cls(country, Ed25519PrivateKey.generate())

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @cached_property
    def key_id(self) -> str:
        """Computed once: it goes into every envelope this key signs."""
        return key_id_for(self.country, self.public)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def save(self, path: Path, passphrase: bytes | None = None) -> None:
        """Write the private key as PKCS#8 PEM, encrypted when a passphrase is given.

        The file is created with mode 0600 before any key bytes are written.
        """
        write_private_pem(path, private_pem(self.private, passphrase))

    @classmethod
    def load(cls, country: str, path: Path, passphrase: bytes | None = None) -> SigningKey:
        key = load_private_pem(path, passphrase)
        if not isinstance(key, Ed25519PrivateKey):
            raise CryptoError(f"{path} is not an Ed25519 private key")
        return cls(country, key)


def verify(public: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    """Raise SignatureInvalid unless ``signature`` is ``public``'s over ``data``."""
    try:
        public.verify(signature, data)
    except InvalidSignature as exc:
        raise SignatureInvalid("signature does not verify") from exc
