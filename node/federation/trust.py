"""Keys and the manifest as a home sees them: what `corredor keys` and
`corredor federation` do.

A member home holds its Ed25519 signing key, its X25519 encryption key and the
Secretariat key it pinned at ``init``. The Secretariat's home holds the
manifest-signing key, the draft manifest and the current signed manifest.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.config import Home, key_passphrase, regional_policy_path
from node.crypto import linkage
from node.crypto.keys import EncryptionKey, load_x25519_public_pem, x25519_public_pem
from node.crypto.sealing import SealedBox, open_sealed, seal
from node.crypto.signing import SigningKey, key_id_for, load_public_pem, public_pem, verify
from node.errors import ConfigError, ConfigFileError, CryptoError, SignatureInvalid
from node.federation import manifest as fed
from node.federation import membership, statements
from node.federation import trust_ledger as ledger
from node.limits import MAX_MANIFEST_BYTES, read_limited
from node.model.codes import COUNTRY_NAMES, is_iso3
from node.model.manifest import MANIFEST_VERSION, KeyStatement, Manifest, SignedManifest
from node.policy.loader import load_floor

SECRETARIAT = "TS"


def _write_public(path: Path, pem: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pem, encoding="ascii")


# -- member keys ---------------------------------------------------------------------


def generate_member_keys(home: Home, passphrase: bytes | None = None) -> tuple[str, str]:
    """Create the node's signing and encryption keys; returns their ids."""
    if home.signing_key_path.exists():
        raise ConfigError(f"{home.signing_key_path} exists: use `corredor keys rotate`")
    passphrase = passphrase if passphrase is not None else key_passphrase()
    signing = SigningKey.generate(home.country)
    signing.save(home.signing_key_path, passphrase)
    _write_public(home.public_key_path, public_pem(signing.public))
    enc = EncryptionKey.generate(home.country)
    enc.save(home.encryption_key_path, passphrase)
    _write_public(home.encryption_pub_path, x25519_public_pem(enc.public))
    return signing.key_id, enc.key_id


def load_signing_key(home: Home) -> SigningKey:
    return SigningKey.load(home.country, home.signing_key_path, key_passphrase())


def load_encryption_key(home: Home) -> EncryptionKey:
    return EncryptionKey.load(home.country, home.encryption_key_path, key_passphrase())


def rotate_signing_key(home: Home) -> tuple[str, str]:
    """Make a new signing key current; keep the old one in keys/retired/.

    Returns (old id, new id). The Secretariat then adds the new public key to
    the manifest and ends the old key's validity after an overlap, so events
    signed before the rotation stay valid.
    """
    old = load_signing_key(home)
    home.retired_keys_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    retired = home.retired_keys_dir / f"signing-{old.key_id.split(':')[1]}-{stamp}.key"
    home.signing_key_path.replace(retired)
    home.public_key_path.replace(retired.with_suffix(".pub"))
    new = SigningKey.generate(home.country)
    new.save(home.signing_key_path, key_passphrase())
    pem = public_pem(new.public)
    _write_public(home.public_key_path, pem)
    # The old key vouches for the new one: nodes accept the new key only along
    # such statements from the key pinned when this member joined.
    federation = current_manifest(home).federation if home.manifest_path.exists() else "RCM"
    statement = statements.sign_key_statement(old, federation, "signing", new.key_id, pem)
    fed.write_json(rotation_statement_path(home, new.key_id), statement.model_dump_json(indent=2))
    return old.key_id, new.key_id


def pin_secretariat(home: Home, pem: str) -> str:
    """Pin the Secretariat's manifest-signing key in a member home."""
    key_id = key_id_for(SECRETARIAT, load_public_pem(pem))
    _write_public(home.secretariat_pub_path, pem)
    return key_id


def pinned_secretariat(home: Home) -> tuple[str, Ed25519PublicKey]:
    if not home.secretariat_pub_path.is_file():
        raise ConfigError(
            f"{home.path} has no pinned Secretariat key: "
            "run `corredor init ... --secretariat-key FILE`"
        )
    public = load_public_pem(home.secretariat_pub_path.read_text(encoding="ascii"))
    return key_id_for(SECRETARIAT, public), public


# -- the Secretariat -----------------------------------------------------------------


def init_secretariat_keys(home: Home) -> str:
    """The manifest-signing key and an empty signed manifest (serial 1)."""
    key = SigningKey.generate(SECRETARIAT)
    key.save(home.secretariat_key_path, key_passphrase())
    _write_public(home.secretariat_pub_path, public_pem(key.public))
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


# -- any home: the current manifest ---------------------------------------------------


def current_manifest(home: Home) -> Manifest:
    """The home's current manifest, verified against the Secretariat key it trusts."""
    key_id, public = pinned_secretariat(home)
    return fed.verify_manifest(fed.read_signed(home.manifest_path), public, key_id)


def accept_manifest(home: Home, signed: SignedManifest) -> tuple[Manifest, bool]:
    """Verify a manifest with the pinned key; keep it if newer. (manifest, updated).

    Every manifest seen is recorded as a head (serial, hash). Another manifest
    with a serial already seen, or a next serial whose ``prev_sha256`` is not
    the current one's hash, is an equivocation: it is recorded as an alarm,
    logged, refused (``ManifestAlarm``), and the last good manifest stays."""
    key_id, public = pinned_secretariat(home)
    manifest = fed.verify_manifest(signed, public, key_id)
    digest = fed.payload_sha256(signed)
    heads = ledger.load_heads(home)
    seen = heads.get(manifest.serial)
    if seen is not None and seen != digest:
        ledger.alarm(
            home,
            "equivocation",
            f"two different manifests with serial {manifest.serial}: "
            f"{seen[:16]} kept, {digest[:16]} refused",
        )
    if home.manifest_path.exists():
        current_signed = fed.read_signed(home.manifest_path)
        current = current_manifest(home)
        if manifest.serial <= current.serial:
            return current, False
        if manifest.version >= 2 and current.version >= 2 and manifest.serial > current.serial + 1:
            # The serials between are on the control topic (one key each): a
            # manifest that skips them cannot be checked against this head.
            raise ConfigError(
                f"manifest serial {manifest.serial} does not follow serial {current.serial} "
                "here: take the serials between first (`federation sync` reads them all)"
            )
        if (
            manifest.version >= 2
            and manifest.serial == current.serial + 1
            and manifest.prev_sha256 != fed.payload_sha256(current_signed)
        ):
            ledger.alarm(
                home,
                "fork",
                f"manifest serial {manifest.serial} does not extend the last head "
                f"(serial {current.serial}, {fed.payload_sha256(current_signed)[:16]})",
            )
    ledger.record_head(home, manifest.serial, digest)
    fed.write_json(home.manifest_path, signed.model_dump_json(indent=2))
    return manifest, True


def trust_view(home: Home, manifest: Manifest | None = None) -> membership.TrustView:
    """What this home trusts in its current manifest (see ``node.federation.membership``)."""
    manifest = manifest if manifest is not None else current_manifest(home)
    return membership.evaluate(
        manifest,
        ledger.load_founders(home),
        ledger.load_approvals(home),
        ledger.load_revocations(home),
        _quorum_rule(),
    )


def _quorum_rule() -> membership.QuorumRule:
    """The regional floor's quorum (every node runs the floor the manifest names)."""
    path = regional_policy_path()
    return _floor_quorum(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _floor_quorum(path: str, _mtime: int) -> membership.QuorumRule:
    return load_floor(Path(path)).membership_quorum


def key_directory(home: Home) -> fed.KeyDirectory:
    """Signing keys for verifying events: only those the trust view counts, with
    the members' own revocations applied."""
    if not home.manifest_path.exists():
        return fed.KeyDirectory(None)
    manifest = current_manifest(home)
    view = trust_view(home, manifest)
    return fed.KeyDirectory(view.effective or manifest, view.trusted_signing_ids())


def _sealing_targets(
    home: Home, manifest: Manifest, countries: set[str], *, members_only: bool
) -> dict[str, tuple[str, X25519PublicKey]]:
    """Country -> (key id, key) of its newest valid encryption key that the trust
    view counts; a country whose membership does not verify gets nothing."""
    view = trust_view(home, manifest)
    manifest = view.effective or manifest
    now = datetime.now(UTC)
    out: dict[str, tuple[str, X25519PublicKey]] = {}
    for country in sorted(countries):
        member = manifest.member(country)
        counted = view.is_member(country) if members_only else view.counts(country)
        if member is None or not counted:
            continue
        valid = [
            k
            for k in member.encryption_keys
            if k.state_at(now) == "valid" and view.encryption_key_ok(country, k.key_id)
        ]
        if valid:
            entry = max(valid, key=lambda k: k.valid_from)
            out[country] = (entry.key_id, load_x25519_public_pem(entry.public_pem))
    return out


def restricted_recipients(home: Home, audiences: list[str]) -> dict[str, X25519PublicKey]:
    """X25519 keys (by key id) that a restricted event for ``audiences`` is sealed
    to: each named country's current encryption key, or every other member's for
    ``members``. Groups with no keys (TS, IOM, public) get none, by design: the
    Secretariat relays restricted events but cannot read them."""
    if not home.manifest_path.exists():
        return {}
    manifest = current_manifest(home)
    now = datetime.now(UTC)
    countries = {a for a in audiences if is_iso3(a)}
    view = trust_view(home, manifest)
    if "members" in audiences:
        # Every member whose membership verifies under quorum, and no other.
        countries |= {m.country for m in manifest.members if view.is_member(m.country)}
    countries.discard(home.country)
    targets = _sealing_targets(home, manifest, countries, members_only=False)
    for country in sorted(countries):
        member = manifest.member(country)
        if member is None or member.current_encryption_key(now) is None:
            raise ConfigError(f"the manifest has no valid encryption key for {country}")
        if country not in targets:
            raise ConfigError(
                f"{country}'s membership or encryption key does not verify under quorum: "
                "nothing is sealed to it (see `corredor doctor`)"
            )
    return {key_id: key for key_id, key in targets.values()}


# -- the regional linkage key ---------------------------------------------------------


def create_linkage_key(home: Home) -> str:
    """Generate the regional linkage key at this member (done once, by one member)."""
    if home.is_aggregator:
        raise ConfigError("the Secretariat never holds the linkage key")
    if home.linkage_key_path.exists():
        raise ConfigError(f"{home.linkage_key_path} exists already")
    key = linkage.new_linkage_key()
    linkage.save_linkage_key(home.linkage_key_path, key, key_passphrase())
    return linkage.key_fingerprint(key)


def load_linkage_key(home: Home) -> bytes | None:
    """The regional linkage key, or None if this node has not received it."""
    if not home.linkage_key_path.exists():
        return None
    return linkage.load_linkage_key(home.linkage_key_path, key_passphrase())


def bundle_linkage_key(home: Home) -> tuple[linkage.KeyBundle, list[str]]:
    """Seal this node's linkage key to every other member in the manifest and
    sign the bundle. Returns (bundle, recipient countries)."""
    key = load_linkage_key(home)
    if key is None:
        raise ConfigError("this node holds no linkage key: `linkage init` or `linkage sync`")
    manifest = current_manifest(home)
    others = {m.country for m in manifest.members if m.country != home.country}
    targets = _sealing_targets(home, manifest, others, members_only=True)
    recipients = {key_id: key for key_id, key in targets.values()}
    countries = sorted(targets)
    if not recipients:
        raise ConfigError("no other member in the manifest has a valid encryption key")
    fingerprint = linkage.key_fingerprint(key)
    box = seal(key, recipients, linkage.bundle_aad(home.country, fingerprint))
    signer = load_signing_key(home)
    unsigned = linkage.KeyBundle(home.country, signer.key_id, fingerprint, box.to_bytes(), b"")
    bundle = linkage.KeyBundle(
        home.country,
        signer.key_id,
        fingerprint,
        box.to_bytes(),
        signer.sign(unsigned.signed_part()),
    )
    return bundle, countries


def accept_linkage_bundle(home: Home, bundle: linkage.KeyBundle) -> tuple[str, bool]:
    """Verify a bundle against the manifest, open it, keep the key.
    Returns (fingerprint, stored); an identical key already held is not rewritten."""
    if home.is_aggregator:
        raise ConfigError("the Secretariat never holds the linkage key")
    manifest = current_manifest(home)
    found = manifest.signing_key(bundle.signing_key_id)
    view = trust_view(home, manifest)
    if (
        found is None
        or found[0].country != bundle.distributor
        or not view.is_member(bundle.distributor)
        or not view.signing_key_ok(bundle.distributor, bundle.signing_key_id)
    ):
        raise SignatureInvalid(
            "linkage key bundle not signed by a member whose membership verifies"
        )
    _, entry = found
    if entry.state_at(datetime.now(UTC)) != "valid":
        raise SignatureInvalid("linkage key bundle signed with a key that is not valid now")
    verify(load_public_pem(entry.public_pem), bundle.signature, bundle.signed_part())
    mine = load_encryption_key(home)
    key = open_sealed(
        SealedBox.from_bytes(bundle.sealed),
        mine.key_id,
        mine.private,
        linkage.bundle_aad(bundle.distributor, bundle.fingerprint),
    )
    if linkage.key_fingerprint(key) != bundle.fingerprint:
        raise CryptoError("linkage key does not match its fingerprint")
    held = load_linkage_key(home)
    if held == key:
        return bundle.fingerprint, False
    linkage.save_linkage_key(home.linkage_key_path, key, key_passphrase())
    return bundle.fingerprint, True


# -- membership by quorum ---------------------------------------------------------------


def founders_from_manifest(home: Home) -> statements.Founders:
    """The founding list as the current manifest states it (for out-of-band checks)."""
    return statements.founders_of(current_manifest(home))


def approve(home: Home, change_id: str) -> statements.Approval:
    """Sign this member's approval of a change its trust view shows as pending."""
    if home.is_aggregator:
        raise ConfigError("only a member approves changes: the Secretariat alone decides nothing")
    view = trust_view(home)
    pending = next((p for p in view.pending if p.change_id == change_id), None)
    if pending is None:
        known = ", ".join(p.change_id for p in view.pending) or "none"
        raise ConfigError(
            f"no pending change {change_id} in this node's manifest (pending: {known})"
        )
    signer = load_signing_key(home)
    if not view.signing_key_ok(home.country, signer.key_id):
        raise ConfigError(f"this node's key {signer.key_id} is not counted: it cannot approve")
    approval = statements.sign_approval(signer, pending.change)
    ledger.store_approval(home, approval)
    return approval


def add_key_statements(home: Home, country: str, statements: list[KeyStatement]) -> None:
    save_draft(home, fed.add_key_statements(load_draft(home), country.upper(), statements))


def read_key_statement(path: Path) -> KeyStatement:
    try:
        return KeyStatement.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no key statement at {path}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not a key statement: {exc}") from exc


def rotation_statement_path(home: Home, key_id: str) -> Path:
    return home.path / "keys" / f"rotation-{key_id.replace(':', '-')}.json"


def linkage_recipients(home: Home) -> list[str]:
    """The members `linkage share` would seal to now: those whose membership
    and encryption key verify under quorum."""
    manifest = current_manifest(home)
    others = {m.country for m in manifest.members if m.country != home.country}
    return sorted(_sealing_targets(home, manifest, others, members_only=True))


def new_linkage_recipients(home: Home, countries: list[str]) -> list[str]:
    """Those of ``countries`` this node never sealed the linkage key to."""
    path = ledger.linkage_recipients_path(home)
    before = set(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else set()
    return sorted(set(countries) - before)


def remember_linkage_recipients(home: Home, countries: list[str]) -> None:
    path = ledger.linkage_recipients_path(home)
    before = set(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else set()
    fed.write_json(path, json.dumps(sorted(before | set(countries))))


def revoke_own(home: Home, key_id: str | None = None) -> statements.SelfRevocation:
    """This member revokes one of its own keys (default: its current signing
    key), signed with its current signing key. Needs no quorum."""
    if home.is_aggregator:
        raise ConfigError("the Secretariat revokes with `federation revoke`")
    signer = load_signing_key(home)
    manifest = current_manifest(home)
    target = key_id or signer.key_id
    member = manifest.member(home.country)
    keys = [*member.signing_keys, *member.encryption_keys] if member else []
    if all(k.key_id != target for k in keys):
        raise ConfigError(f"no key {target} of {home.country} in the manifest")
    revocation = statements.sign_revocation(signer, manifest.federation, target)
    ledger.store_revocation(home, revocation)
    return revocation
