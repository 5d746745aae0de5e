"""Encryption to named recipients, in the standard form of HPKE (RFC 9180).

Version 2 (written now). A random 256-bit content key encrypts the padded
plaintext once with AES-256-GCM. For each recipient the content key is sealed
with HPKE in base mode, single-shot (RFC 9180 section 6.1), suite
DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM (ids 0x0020, 0x0001,
0x0002), with ``info = b"corredor/v2 content key|" + aad`` so the wrapped key is
bound to the event it belongs to. pyca/cryptography (>= 47) ships this suite
as ``cryptography.hazmat.primitives.hpke``, so a recipient such as UNODC opens
a report with off-the-shelf code: split the bytes below, HPKE-open each entry
until one opens, AES-GCM-decrypt, strip the padding.

    0x02 | count (u16 BE) | count x (enc 32 bytes || HPKE ct 48 bytes)
         | nonce (12) | AES-256-GCM(content key, nonce, padded, aad)

What the bytes do not show:

- **Who it is for.** An entry names nobody: it is an HPKE encapsulated key and
  ciphertext, fresh for each message, indistinguishable between recipients.
  A recipient finds its own by trying to open each (a handful of X25519
  operations). Not even a salted hash of the key id is carried, because key
  ids are public (in the manifest) and anyone could recompute such a hash for
  every member; only the number of recipients shows.
- **How long the plaintext is.** The plaintext is padded (ISO/IEC 7816-4:
  0x80 then zeros) to a power-of-two bucket of at least 256 bytes, so
  lengths within one bucket give the same ciphertext length.

Version 1 (X25519 + HKDF + AES-GCM key wrap, recipient key ids in clear) is
still read, so boxes sealed before the upgrade stay readable.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.errors import CryptoError

_V1 = 1
_V2 = 2
_INFO = b"corredor/v1 content-key wrap"
HPKE_INFO = b"corredor/v2 content key|"
_NONCE = 12
_KEY = 32
#: An HPKE entry: the encapsulated X25519 key and the sealed content key.
ENTRY_BYTES = 32 + _KEY + 16
#: The smallest padding bucket; larger plaintexts go to the next power of two.
MIN_BUCKET = 256
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


class NotAddressed(CryptoError):
    """The box holds no entry this key opens."""


def x25519_public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def bucket_size(length: int) -> int:
    """The padded size for ``length`` bytes (one byte of padding at least)."""
    need = length + 1
    return max(MIN_BUCKET, 1 << (need - 1).bit_length())


def pad(plaintext: bytes) -> bytes:
    size = bucket_size(len(plaintext))
    return plaintext + b"\x80" + b"\x00" * (size - len(plaintext) - 1)


def unpad(padded: bytes) -> bytes:
    body = padded.rstrip(b"\x00")
    if not body or body[-1] != 0x80:
        raise CryptoError("sealed message padding is malformed")
    return body[:-1]


def _wrapping_key(shared: bytes, ephemeral: bytes, recipient_id: str, aad: bytes) -> bytes:
    salt = ephemeral + recipient_id.encode("utf-8")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO + aad).derive(shared)


@dataclass(frozen=True)
class SealedBox:
    """A sealed message. ``entries`` (v2) are opaque; ``wrapped`` and
    ``ephemeral`` are the legacy v1 fields, keyed by recipient key id."""

    nonce: bytes
    ciphertext: bytes
    entries: tuple[bytes, ...] = ()
    version: int = _V2
    ephemeral: bytes = b""
    wrapped: dict[str, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        if self.version == _V1:
            parts = [struct.pack(">B", _V1), self.ephemeral]
            parts.append(struct.pack(">H", len(self.wrapped)))
            for rid, wrapped in sorted(self.wrapped.items()):
                raw = rid.encode("utf-8")
                parts += [
                    struct.pack(">H", len(raw)),
                    raw,
                    struct.pack(">H", len(wrapped)),
                    wrapped,
                ]
            return b"".join([*parts, self.nonce, self.ciphertext])
        head = struct.pack(">BH", _V2, len(self.entries))
        return b"".join([head, *self.entries, self.nonce, self.ciphertext])

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedBox:
        if not data:
            raise CryptoError("malformed sealed box: empty")
        if data[0] == _V2:
            return cls._from_v2(data)
        if data[0] == _V1:
            return cls._from_v1(data)
        raise CryptoError(f"unknown sealed-box version {data[0]}")

    @classmethod
    def _from_v2(cls, data: bytes) -> SealedBox:
        if len(data) < 3:
            raise CryptoError("malformed sealed box: truncated")
        (count,) = struct.unpack_from(">H", data, 1)
        pos = 3 + count * ENTRY_BYTES
        entries = tuple(data[3 + i * ENTRY_BYTES : 3 + (i + 1) * ENTRY_BYTES] for i in range(count))
        nonce, ciphertext = data[pos : pos + _NONCE], data[pos + _NONCE :]
        if not count or len(nonce) != _NONCE or len(ciphertext) < 16:
            raise CryptoError("malformed sealed box: truncated")
        return cls(nonce, ciphertext, entries)

    @classmethod
    def _from_v1(cls, data: bytes) -> SealedBox:
        try:
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
        return cls(nonce, ciphertext, (), _V1, ephemeral, wrapped)

    @property
    def recipients(self) -> list[str]:
        """What the box says about its recipients: key ids for v1; for v2 only
        an opaque, per-message label per entry (it names nobody)."""
        if self.version == _V1:
            return sorted(self.wrapped)
        return [f"hpke:{e[:6].hex()}" for e in self.entries]


def seal(plaintext: bytes, recipients: dict[str, X25519PublicKey], aad: bytes) -> SealedBox:
    """Encrypt ``plaintext`` so that only ``recipients`` (key id -> key) can read it.

    The key ids are not written: entries are shuffled into a random order
    (sorted by their random bytes) so not even position says who is who."""
    if not recipients:
        raise CryptoError("a sealed message needs at least one recipient")
    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE)
    ciphertext = AESGCM(content_key).encrypt(nonce, pad(plaintext), aad)
    entries = sorted(
        SUITE.encrypt(content_key, public, info=HPKE_INFO + aad) for public in recipients.values()
    )
    return SealedBox(nonce, ciphertext, tuple(entries))


def open_sealed(box: SealedBox, recipient_id: str, private: X25519PrivateKey, aad: bytes) -> bytes:
    """Decrypt as ``recipient_id``. Raises NotAddressed if no entry is for this
    key, CryptoError if the message was tampered with."""
    if box.version == _V1:
        return _open_v1(box, recipient_id, private, aad)
    content_key = None
    for entry in box.entries:
        try:
            content_key = SUITE.decrypt(entry, private, info=HPKE_INFO + aad)
            break
        except (InvalidTag, ValueError):
            continue
    if content_key is None:
        raise NotAddressed(f"not addressed to {recipient_id}")
    try:
        return unpad(AESGCM(content_key).decrypt(box.nonce, box.ciphertext, aad))
    except InvalidTag as exc:
        raise CryptoError("sealed message does not authenticate (tampered)") from exc


def _open_v1(box: SealedBox, recipient_id: str, private: X25519PrivateKey, aad: bytes) -> bytes:
    wrapped = box.wrapped.get(recipient_id)
    if wrapped is None:
        raise NotAddressed(f"not addressed to {recipient_id}")
    peer = X25519PublicKey.from_public_bytes(box.ephemeral)
    kek = _wrapping_key(private.exchange(peer), box.ephemeral, recipient_id, aad)
    try:
        content_key = AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        return AESGCM(content_key).decrypt(box.nonce, box.ciphertext, aad)
    except InvalidTag as exc:
        raise CryptoError("sealed message does not authenticate (wrong key or tampered)") from exc


def seal_v1(plaintext: bytes, recipients: dict[str, X25519PublicKey], aad: bytes) -> SealedBox:
    """The legacy format, kept so tests can prove old boxes still open."""
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
    return SealedBox(nonce, ciphertext, (), _V1, ephemeral, wrapped)
