"""Linkage tokens and the regional linkage key.

A linkage token is HMAC-SHA256 under a regional key that member nodes hold and
the Secretariat does not, over a person's normalised travel document number,
nationality and date of birth. The same person met in two countries gets the
same token, so the aggregator can link records into routes; without the key
it cannot reverse a token, nor test a guess against it.

The key travels sealed (see ``sealing``) to each member's X25519 key, in a
bundle signed by the member that distributes it. At rest it is encrypted with
the node's passphrase (scrypt + AES-256-GCM) when one is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from node.crypto.keys import write_private_pem
from node.errors import CryptoError, KeyFileError
from node.limits import MAX_KEY_BYTES, read_limited

KEY_BYTES = 32
_MAGIC_PLAIN = b"corredor-linkage-key/v1 plain\n"
_MAGIC_ENC = b"corredor-linkage-key/v1 scrypt-aesgcm\n"


def _norm(value: str) -> str:
    """Case, accents, spacing and punctuation do not change who a person is."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c for c in stripped.upper() if c.isalnum())


def linkage_token(key: bytes, document_number: str, nationality: str, date_of_birth: str) -> str:
    """The token for one person: 32 hex characters (128 bits) of HMAC-SHA256."""
    if len(key) != KEY_BYTES:
        raise CryptoError("a linkage key is 32 bytes")
    message = "|".join((_norm(document_number), _norm(nationality), date_of_birth.strip()))
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def key_fingerprint(key: bytes) -> str:
    """Names a linkage key without revealing it (members compare these)."""
    return hashlib.sha256(b"corredor linkage key id|" + key).hexdigest()[:16]


def new_linkage_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _kdf(passphrase: bytes, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase)


#: Both formats of a 32-byte secret key file begin with this.
SECRET_KEY_MAGIC = b"corredor-linkage-key/v1 "


def save_secret_key(path: Path, key: bytes, passphrase: bytes | None) -> None:
    """A 32-byte secret key file (linkage or pseudonym key), mode 0600,
    encrypted with the passphrase when one is given."""
    save_linkage_key(path, key, passphrase)


def load_secret_key(path: Path, passphrase: bytes | None) -> bytes:
    return load_linkage_key(path, passphrase)


def save_linkage_key(path: Path, key: bytes, passphrase: bytes | None) -> None:
    if passphrase:
        salt, nonce = os.urandom(16), os.urandom(12)
        sealed = AESGCM(_kdf(passphrase, salt)).encrypt(nonce, key, _MAGIC_ENC)
        data = _MAGIC_ENC + base64.b64encode(salt + nonce + sealed) + b"\n"
    else:
        data = _MAGIC_PLAIN + base64.b64encode(key) + b"\n"
    write_private_pem(path, data)


def load_linkage_key(path: Path, passphrase: bytes | None) -> bytes:
    try:
        data = read_limited(path, limit=MAX_KEY_BYTES, what="a key file", error=KeyFileError)
    except FileNotFoundError as exc:
        raise CryptoError(f"no linkage key at {path}") from exc
    if data.startswith(_MAGIC_PLAIN):
        key = base64.b64decode(data[len(_MAGIC_PLAIN) :])
    elif data.startswith(_MAGIC_ENC):
        if not passphrase:
            raise CryptoError(f"{path} is encrypted at rest: set CORREDOR_KEY_PASSPHRASE")
        raw = base64.b64decode(data[len(_MAGIC_ENC) :])
        salt, nonce, sealed = raw[:16], raw[16:28], raw[28:]
        try:
            key = AESGCM(_kdf(passphrase, salt)).decrypt(nonce, sealed, _MAGIC_ENC)
        except InvalidTag as exc:
            raise CryptoError(f"cannot open {path}: wrong passphrase or damaged file") from exc
    else:
        raise CryptoError(f"{path} is not a linkage key file")
    if len(key) != KEY_BYTES:
        raise CryptoError(f"{path} does not hold a 32-byte key")
    return key


@dataclass(frozen=True)
class KeyBundle:
    """The regional linkage key sealed to members, signed by the distributor."""

    distributor: str  # ISO3
    signing_key_id: str
    fingerprint: str
    sealed: bytes  # SealedBox bytes
    signature: bytes

    def signed_part(self) -> bytes:
        return json.dumps(
            {
                "distributor": self.distributor,
                "signing_key_id": self.signing_key_id,
                "fingerprint": self.fingerprint,
                "sealed": base64.b64encode(self.sealed).decode("ascii"),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode("utf-8")

    def to_json(self) -> str:
        return json.dumps(
            {
                **json.loads(self.signed_part()),
                "signature": base64.b64encode(self.signature).decode("ascii"),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyBundle:
        try:
            d = json.loads(text)
            return cls(
                d["distributor"],
                d["signing_key_id"],
                d["fingerprint"],
                base64.b64decode(d["sealed"], validate=True),
                base64.b64decode(d["signature"], validate=True),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CryptoError(f"not a linkage key bundle: {exc}") from exc


def bundle_aad(distributor: str, fingerprint: str) -> bytes:
    return f"corredor linkage key|{distributor}|{fingerprint}".encode()
