"""The Secretariat's manifest drafts: its manifest-signing key, the draft it edits
(members, keys, revocations, key statements), and signing the draft as the next
serial, every serial kept. Only the Secretariat's home signs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from node.config import Home, key_passphrase
from node.crypto.signing import SigningKey, public_pem
from node.errors import ConfigError, ConfigFileError
from node.federation import manifest as fed
from node.federation.trust import SECRETARIAT, current_manifest, write_public_key
from node.limits import MAX_MANIFEST_BYTES, read_limited
from node.model.codes import COUNTRY_NAMES, is_iso3
from node.model.manifest import MANIFEST_VERSION, KeyStatement, Manifest, SignedManifest

# -- the Secretariat -----------------------------------------------------------------


def init_secretariat_keys(home: Home) -> str:
    """The manifest-signing key and an empty signed manifest (serial 1)."""
    key = SigningKey.generate(SECRETARIAT)
    key.save(home.secretariat_key_path, key_passphrase())
    write_public_key(home.secretariat_pub_path, public_pem(key.public))
    draft = fed.empty_manifest(key.key_id)
    fed.write_json(home.manifest_draft_path, draft.model_dump_json(indent=2))
    sign_draft(home)
    return key.key_id


def _secretariat_key(home: Home) -> SigningKey:
    if not home.is_aggregator:
        raise ConfigError("only the Secretariat's home signs the manifest")
    return SigningKey.load(SECRETARIAT, home.secretariat_key_path, key_passphrase())


def load_draft(home: Home) -> Manifest:
    try:
        data = read_limited(
            home.manifest_draft_path,
            limit=MAX_MANIFEST_BYTES,
            what="a manifest draft",
            error=ConfigFileError,
        )
        return Manifest.model_validate_json(data)
    except FileNotFoundError as exc:
        raise ConfigError(f"no draft manifest at {home.manifest_draft_path}") from exc


def save_draft(home: Home, draft: Manifest) -> None:
    fed.write_json(home.manifest_draft_path, draft.model_dump_json(indent=2))


def add_member(
    home: Home,
    country: str,
    signing_pem: str,
    *,
    encryption_pem: str | None = None,
    name: str | None = None,
    status: Literal["member", "observer"] = "member",
    principal: str | None = None,
    valid_days: int | None = None,
) -> str:
    """Add a member (or a new key of one) to the draft. Returns the key id."""
    country = country.upper()
    if not is_iso3(country):
        raise ConfigError(f"not an ISO 3166-1 alpha-3 country code: {country!r}")
    draft, key_id = fed.add_member(
        load_draft(home),
        country,
        name=name or COUNTRY_NAMES.get(country, country),
        signing_pem=signing_pem,
        encryption_pem=encryption_pem,
        status=status,
        principal=principal,
        valid_days=valid_days,
    )
    save_draft(home, draft)
    return key_id


def revoke(
    home: Home,
    country: str,
    key_id: str | None = None,
    *,
    compromised_at: datetime | None = None,
) -> list[str]:
    """Revoke a member's key(s) in the draft (see ``federation.revoke``)."""
    draft, revoked = fed.revoke(
        load_draft(home), country.upper(), key_id, compromised_at=compromised_at
    )
    save_draft(home, draft)
    return revoked


def retire_key(home: Home, country: str, key_id: str, overlap_hours: float) -> datetime:
    """End a rotated-out key's validity after an overlap; returns when."""
    until = datetime.now(UTC) + timedelta(hours=overlap_hours)
    save_draft(home, fed.expire(load_draft(home), country.upper(), key_id, until))
    return until


def sign_draft(home: Home) -> SignedManifest:
    """Sign the draft as the next serial and make it this home's current manifest."""
    key = _secretariat_key(home)
    draft = load_draft(home)
    current = current_manifest(home) if home.manifest_path.exists() else None
    serial = (current.serial if current else 0) + 1
    prev = fed.payload_sha256(fed.read_signed(home.manifest_path)) if current else None
    manifest = draft.model_copy(
        update={
            "serial": serial,
            "issued_at": datetime.now(UTC),
            "version": MANIFEST_VERSION,
            "prev_sha256": prev,
        }
    )
    save_draft(home, manifest)
    signed = fed.sign_manifest(manifest, key)
    fed.write_json(home.manifest_path, signed.model_dump_json(indent=2))
    # Every serial is kept, so publishing puts the whole chain on the topic.
    fed.write_json(history_path(home, serial), signed.model_dump_json(indent=2))
    return signed


def history_path(home: Home, serial: int) -> Path:
    return home.federation_dir / "history" / f"{serial:012d}.json"


def signed_history(home: Home) -> list[SignedManifest]:
    """The Secretariat's signed manifests, oldest first (from ``sign_draft``)."""
    folder = home.federation_dir / "history"
    return [fed.read_signed(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def add_key_statements(home: Home, country: str, statements: list[KeyStatement]) -> None:
    save_draft(home, fed.add_key_statements(load_draft(home), country.upper(), statements))
