"""Encryption to named recipients: X25519 key agreement, HKDF-SHA256, AES-256-GCM.

A random 256-bit content key encrypts the plaintext once. For each recipient,
an ephemeral X25519 key (one per message) agrees a secret with the recipient's
public key; HKDF-SHA256 turns it into a key-wrapping key bound to the ephemeral
key, the recipient key id and the associated data, which wraps the content
key with AES-256-GCM. Only holders of a recipient private key can unwrap: not
the Secretariat, not other members, not the Kafka operator.

The sealed form is plain bytes (see ``SealedBox.to_bytes``) so it can travel
as an event body; the associated data binds it to the event it belongs to.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.errors import CryptoError

_VERSION = 1
_INFO = b"corredor/v1 content-key wrap"
_NONCE = 12


def x25519_public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _wrapping_key(shared: bytes, ephemeral: bytes, recipient_id: str, aad: bytes) -> bytes:
    salt = ephemeral + recipient_id.encode("utf-8")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO + aad).derive(shared)


@dataclass(frozen=True)
class SealedBox:
    ephemeral: bytes  # 32-byte X25519 public key
    wrapped: dict[str, bytes]  # recipient key id -> nonce || AES-GCM(content key)
    nonce: bytes
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        """version, ephemeral key, recipients (id, wrapped key), nonce, ciphertext."""
        parts = [struct.pack(">B", _VERSION), self.ephemeral, struct.pack(">H", len(self.wrapped))]
        for rid, wrapped in sorted(self.wrapped.items()):
            raw = rid.encode("utf-8")
            parts += [struct.pack(">H", len(raw)), raw, struct.pack(">H", len(wrapped)), wrapped]
        parts += [self.nonce, self.ciphertext]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedBox:
        try:
            (version,) = struct.unpack_from(">B", data, 0)
            if version != _VERSION:
                raise CryptoError(f"unknown sealed-box version {version}")
            pos = 1
            ephemeral = data[pos : pos + 32]
            pos += 32
            (count,) = struct.unpack_from(">H", data, pos)
            pos += 2
            wrapped: dict[str, bytes] = {}
            for _ in range(count):
                (n,) = struct.unpack_from(">H", data, pos)
                rid = data[pos + 2 : pos + 2 + n].decode("utf-8")
                pos += 2 + n
                (m,) = struct.unpack_from(">H", data, pos)
                wrapped[rid] = data[pos + 2 : pos + 2 + m]
                pos += 2 + m
            nonce = data[pos : pos + _NONCE]
            ciphertext = data[pos + _NONCE :]
        except (struct.error, UnicodeDecodeError) as exc:
            raise CryptoError(f"malformed sealed box: {exc}") from exc
        if len(ephemeral) != 32 or len(nonce) != _NONCE or not ciphertext:
            raise CryptoError("malformed sealed box: truncated")
        return cls(ephemeral, wrapped, nonce, ciphertext)

    @property
    def recipients(self) -> list[str]:
        return sorted(self.wrapped)


def seal(plaintext: bytes, recipients: dict[str, X25519PublicKey], aad: bytes) -> SealedBox:
    """Encrypt ``plaintext`` so that only ``recipients`` (key id -> key) can read it."""
    if not recipients:
        raise CryptoError("a sealed message needs at least one recipient")
    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE)
    ciphertext = AESGCM(content_key).encrypt(nonce, plaintext, aad)
    ephemeral_key = X25519PrivateKey.generate()
    ephemeral = x25519_public_bytes(ephemeral_key.public_key())
    wrapped = {}
    for rid, public in recipients.items():
        kek = _wrapping_key(ephemeral_key.exchange(public), ephemeral, rid, aad)
        wrap_nonce = os.urandom(_NONCE)
        wrapped[rid] = wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, content_key, aad)
    return SealedBox(ephemeral, wrapped, nonce, ciphertext)


def open_sealed(box: SealedBox, recipient_id: str, private: X25519PrivateKey, aad: bytes) -> bytes:
    """Decrypt as ``recipient_id``. Raises CryptoError if not addressed to it or tampered."""
    wrapped = box.wrapped.get(recipient_id)
    if wrapped is None:
        raise CryptoError(f"not addressed to {recipient_id}")
    peer = X25519PublicKey.from_public_bytes(box.ephemeral)
    kek = _wrapping_key(private.exchange(peer), box.ephemeral, recipient_id, aad)
    try:
        content_key = AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        return AESGCM(content_key).decrypt(box.nonce, box.ciphertext, aad)
    except InvalidTag as exc:
        raise CryptoError("sealed message does not authenticate (wrong key or tampered)") from exc
