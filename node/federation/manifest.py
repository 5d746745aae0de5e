"""The signed federation manifest: drafting, signing, verifying, distributing.

The Secretariat keeps a draft manifest in its home, changes it with
``add_member`` and ``revoke``, and ``sign`` turns it into the current signed
manifest (serial + 1). Nodes verify it against the Secretariat key pinned at
``init`` and keep the newest they have seen; an older serial never replaces a
newer one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.crypto.keys import load_x25519_public_pem, x25519_key_id
from node.crypto.signing import SigningKey, key_id_for, load_public_pem, verify
from node.errors import ConfigError, ConfigFileError, CryptoError, SignatureInvalid
from node.limits import MAX_MANIFEST_BYTES, read_limited
from node.model.manifest import KeyEntry, KeyStatement, Manifest, Member, SignedManifest


def canonical(manifest: Manifest) -> str:
    """The signed payload: RFC 8785 (JCS) from version 2, so a verifier in any
    language reproduces its bytes and hash; version 1 kept its sorted-keys form."""
    data = manifest.model_dump(mode="json")
    if manifest.version >= 2:
        return rfc8785.dumps(data).decode("utf-8")
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def payload_sha256(signed: SignedManifest) -> str:
    """The manifest's hash: SHA-256 of its signed payload bytes (the chain link)."""
    return hashlib.sha256(signed.payload.encode("utf-8")).hexdigest()


def sign_manifest(manifest: Manifest, key: SigningKey) -> SignedManifest:
    if manifest.secretariat_key_id != key.key_id:
        raise CryptoError("the manifest names another Secretariat key than the one signing it")
    payload = canonical(manifest)
    signature = base64.b64encode(key.sign(payload.encode("utf-8"))).decode("ascii")
    return SignedManifest(payload=payload, signature=signature, signer=key.key_id)


def verify_manifest(signed: SignedManifest, pinned: Ed25519PublicKey, pinned_id: str) -> Manifest:
    """The manifest, if and only if the pinned Secretariat key signed it."""
    if signed.signer != pinned_id:
        raise SignatureInvalid(
            f"manifest signed by {signed.signer}, not the pinned Secretariat key {pinned_id}"
        )
    try:
        signature = base64.b64decode(signed.signature, validate=True)
    except ValueError as exc:
        raise SignatureInvalid("manifest signature is not base64") from exc
    verify(pinned, signature, signed.payload.encode("utf-8"))
    manifest = Manifest.model_validate_json(signed.payload)
    if manifest.secretariat_key_id != pinned_id:
        raise SignatureInvalid("manifest names another Secretariat key")
    return manifest


def read_signed(path: Path) -> SignedManifest:
    try:
        data = read_limited(
            path, limit=MAX_MANIFEST_BYTES, what="a manifest", error=ConfigFileError
        )
        return SignedManifest.model_validate_json(data)
    except FileNotFoundError as exc:
        raise ConfigError(f"no manifest at {path}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not a signed manifest: {exc}") from exc


def write_json(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def empty_manifest(secretariat_key_id: str) -> Manifest:
    return Manifest(serial=0, issued_at=datetime.now(UTC), secretariat_key_id=secretariat_key_id)


def add_member(
    draft: Manifest,
    country: str,
    *,
    name: str,
    signing_pem: str,
    encryption_pem: str | None = None,
    status: Literal["member", "observer"] = "member",
    principal: str | None = None,
    valid_from: datetime | None = None,
    valid_days: int | None = None,
) -> tuple[Manifest, str]:
    """Add a member, or a new key to a member. Returns (draft, signing key id)."""
    start = valid_from or datetime.now(UTC)
    until = start + timedelta(days=valid_days) if valid_days else None
    key_id = key_id_for(country, load_public_pem(signing_pem))
    members = [m.model_copy(deep=True) for m in draft.members]
    member = next((m for m in members if m.country == country), None)
    if member is None:
        member = Member(
            country=country,
            name=name,
            status=status,
            kafka_principal=principal or f"User:{country}",
        )
        members.append(member)
    else:
        member.name = name or member.name
        member.status = status
        if principal:
            member.kafka_principal = principal
    if all(k.key_id != key_id for k in member.signing_keys):
        member.signing_keys.append(
            KeyEntry(key_id=key_id, public_pem=signing_pem, valid_from=start, valid_until=until)
        )
    if encryption_pem is not None:
        enc_id = x25519_key_id(country, load_x25519_public_pem(encryption_pem))
        if all(k.key_id != enc_id for k in member.encryption_keys):
            member.encryption_keys.append(
                KeyEntry(
                    key_id=enc_id, public_pem=encryption_pem, valid_from=start, valid_until=until
                )
            )
    members.sort(key=lambda m: m.country)
    return draft.model_copy(update={"members": members}), key_id


def revoke(
    draft: Manifest,
    country: str,
    key_id: str | None = None,
    at: datetime | None = None,
    *,
    compromised_at: datetime | None = None,
) -> tuple[Manifest, list[str]]:
    """Revoke one key of a member, or all its keys. Returns (draft, revoked ids).

    ``compromised_at``: from when the key may have been in other hands; events
    the broker appended from then on leave the picture, earlier ones stay.
    Without it nothing the key ever signed is trusted."""
    when = at or datetime.now(UTC)
    if compromised_at is not None:
        if compromised_at.tzinfo is None:
            raise ConfigError("the compromise time needs a time zone (e.g. 2026-11-30T08:00Z)")
        if compromised_at > when:
            raise ConfigError(
                f"the compromise time {compromised_at.isoformat()} is after the revocation"
            )
    members = [m.model_copy(deep=True) for m in draft.members]
    member = next((m for m in members if m.country == country), None)
    if member is None:
        raise ConfigError(f"{country} is not in the manifest")
    revoked = []
    for entry in [*member.signing_keys, *member.encryption_keys]:
        if (key_id is None or entry.key_id == key_id) and entry.revoked_at is None:
            entry.revoked_at = when
            entry.compromised_at = compromised_at
            revoked.append(entry.key_id)
    if not revoked:
        raise ConfigError(f"no unrevoked key {key_id or ''} of {country} in the manifest".strip())
    return draft.model_copy(update={"members": members}), revoked


def expire(draft: Manifest, country: str, key_id: str, until: datetime) -> Manifest:
    """End a key's validity at ``until`` (a rotation's overlap), without revoking it."""
    members = [m.model_copy(deep=True) for m in draft.members]
    for m in members:
        for entry in [*m.signing_keys, *m.encryption_keys]:
            if m.country == country and entry.key_id == key_id:
                entry.valid_until = until
                return draft.model_copy(update={"members": members})
    raise ConfigError(f"no key {key_id} of {country} in the manifest")


def add_key_statements(draft: Manifest, country: str, statements: list[KeyStatement]) -> Manifest:
    """Carry a member's rotation statements (its own signatures over its new
    keys) in the draft; nodes check them, the Secretariat only relays them."""
    members = [m.model_copy(deep=True) for m in draft.members]
    member = next((m for m in members if m.country == country), None)
    if member is None:
        raise ConfigError(f"{country} is not in the manifest")
    for st in statements:
        if all((k.key_id, k.signed_by) != (st.key_id, st.signed_by) for k in member.key_statements):
            member.key_statements.append(st)
    return draft.model_copy(update={"members": members})


@dataclass(frozen=True)
class TrustedKey:
    country: str
    public: Ed25519PublicKey
    entry: KeyEntry


class KeyDirectory:
    """Signing keys by id, from a verified manifest, for the aggregator's checks."""

    def __init__(self, manifest: Manifest | None, trusted: set[str] | None = None) -> None:
        """``trusted``: only these key ids (the trust view's), when given."""
        self.manifest = manifest
        self._keys: dict[str, TrustedKey] = {}
        for m in manifest.members if manifest else []:
            for entry in m.signing_keys:
                if trusted is not None and entry.key_id not in trusted:
                    continue
                self._keys[entry.key_id] = TrustedKey(
                    m.country, load_public_pem(entry.public_pem), entry
                )

    def get(self, key_id: str) -> TrustedKey | None:
        return self._keys.get(key_id)

    def key_ids(self) -> list[str]:
        """The ids of the keys trusted here (``KeyDirectory(manifest, set(ids))``
        rebuilds the same directory, as the aggregator's check workers do)."""
        return sorted(self._keys)

    def revoked(self) -> list[TrustedKey]:
        """The signing keys the manifest revoked, in key id order."""
        return [k for _, k in sorted(self._keys.items()) if k.entry.revoked_at is not None]

    def __len__(self) -> int:
        return len(self._keys)
