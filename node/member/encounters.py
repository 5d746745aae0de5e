"""What a node needs to pseudonymise its encounter records: its own HMAC key,
the regional linkage key when it holds one, and a gazetteer of places."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from node.config import REPO_ROOT, Home, key_passphrase, policies_dir
from node.crypto.keys import write_private_pem
from node.crypto.linkage import (
    SECRET_KEY_MAGIC,
    linkage_token,
    load_linkage_key,
    load_secret_key,
    save_secret_key,
)
from node.errors import ConfigError, CryptoError, KeyFileError
from node.limits import MAX_KEY_BYTES, read_limited
from node.policy.places import country_gazetteer, places_file
from node.policy.records import Gazetteer, Linker

PSEUDONYM_KEY_BYTES = 32


def create_pseudonym_key(home: Home) -> None:
    """Write a fresh random pseudonym key into the home, mode 0600; encrypted at
    rest (scrypt, AES-256-GCM) like the other secrets when a passphrase is set."""
    key = os.urandom(PSEUDONYM_KEY_BYTES)
    passphrase = key_passphrase()
    if passphrase:
        save_secret_key(home.pseudonym_key_path, key, passphrase)
    else:
        write_private_pem(home.pseudonym_key_path, key.hex().encode() + b"\n")


def pseudonym_key(home: Home) -> bytes:
    """The node's HMAC key for pseudonyms; created on first use in homes made
    before the key existed."""
    path = home.pseudonym_key_path
    if not path.exists():
        create_pseudonym_key(home)
    try:
        data = read_limited(path, limit=MAX_KEY_BYTES, what="a key file", error=KeyFileError)
        if data.startswith(SECRET_KEY_MAGIC):
            key = load_secret_key(path, key_passphrase())
        else:  # plain hex, as written without a passphrase
            key = bytes.fromhex(data.decode("ascii").strip())
    except (OSError, ValueError, CryptoError) as exc:
        raise ConfigError(f"{path}: not a pseudonym key: {exc}") from exc
    if len(key) != PSEUDONYM_KEY_BYTES:
        raise ConfigError(f"{path}: a pseudonym key is {PSEUDONYM_KEY_BYTES} bytes")
    return key


def linker(home: Home) -> Linker | None:
    """Linkage tokens under the regional key, or None when the home has none."""
    if not home.linkage_key_path.exists():
        return None
    try:
        key = load_linkage_key(home.linkage_key_path, key_passphrase())
    except CryptoError as exc:
        raise ConfigError(f"{home.linkage_key_path}: {exc}") from exc

    def token(document_number: str, nationality: str, date_of_birth: str) -> str:
        return linkage_token(key, document_number, nationality, date_of_birth)

    return token


@dataclass(frozen=True)
class EncounterKeys:
    """The keys EncounterRecord events are made with, loaded once per run (or
    per worker process): with a passphrase, each load runs scrypt."""

    pseudonym_key: bytes
    linker: Linker | None

    @classmethod
    def load(cls, home: Home) -> EncounterKeys:
        return cls(pseudonym_key(home), linker(home))


@lru_cache(maxsize=16)
def gazetteer(country: str) -> Gazetteer:
    """Place -> (province, border sector) for ``country``'s places, from its data
    file ``policies/places/<ISO3>.csv`` (node.policy.places); empty, and every
    place counted as unknown, for a country that ships none."""
    return country_gazetteer(policies_dir(), country)


def gazetteer_file(country: str) -> str:
    """The file ``gazetteer(country)`` reads (which may not exist), as outputs
    name it: relative to the checkout (``policies/places/PAN.csv``)."""
    path = places_file(policies_dir(), country)
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
