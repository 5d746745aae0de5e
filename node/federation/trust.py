"""Keys and the manifest as a home sees them: what `corredor keys` and
`corredor federation` do.

A member home holds its Ed25519 signing key, its X25519 encryption key and the
Secretariat key it pinned at ``init``. The Secretariat's home holds the
manifest-signing key, the draft manifest and the current signed manifest.

This module holds a home's own keys, the current manifest and what the home
trusts in it (the trust view, the key directory events are verified against,
whom a restricted event is sealed to), and a member's approvals and
self-revocations. The Secretariat's drafting and signing are in ``drafts``, the
regional linkage key in ``linkage_keys``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.config import Home, key_passphrase, regional_policy_path
from node.crypto.keys import EncryptionKey, load_x25519_public_pem, x25519_public_pem
from node.crypto.signing import SigningKey, key_id_for, load_public_pem, public_pem
from node.errors import ConfigError
from node.federation import manifest as fed
from node.federation import membership, statements
from node.federation import trust_ledger as ledger
from node.model.codes import is_iso3
from node.model.manifest import KeyStatement, Manifest, SignedManifest
from node.policy.loader import load_floor

SECRETARIAT = "TS"


def write_public_key(path: Path, pem: str) -> None:
    """Write a public key (PEM) where a home keeps it, creating its folder."""
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
    write_public_key(home.public_key_path, public_pem(signing.public))
    enc = EncryptionKey.generate(home.country)
    enc.save(home.encryption_key_path, passphrase)
    write_public_key(home.encryption_pub_path, x25519_public_pem(enc.public))
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
    write_public_key(home.public_key_path, pem)
    # The old key vouches for the new one: nodes accept the new key only along
    # such statements from the key pinned when this member joined.
    federation = current_manifest(home).federation if home.manifest_path.exists() else "RCM"
    statement = statements.sign_key_statement(old, federation, "signing", new.key_id, pem)
    fed.write_json(rotation_statement_path(home, new.key_id), statement.model_dump_json(indent=2))
    return old.key_id, new.key_id


def pin_secretariat(home: Home, pem: str) -> str:
    """Pin the Secretariat's manifest-signing key in a member home."""
    key_id = key_id_for(SECRETARIAT, load_public_pem(pem))
    write_public_key(home.secretariat_pub_path, pem)
    return key_id


def pinned_secretariat(home: Home) -> tuple[str, Ed25519PublicKey]:
    if not home.secretariat_pub_path.is_file():
        raise ConfigError(
            f"{home.path} has no pinned Secretariat key: "
            "run `corredor init ... --secretariat-key FILE`"
        )
    public = load_public_pem(home.secretariat_pub_path.read_text(encoding="ascii"))
    return key_id_for(SECRETARIAT, public), public


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


def sealing_targets(
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
    targets = sealing_targets(home, manifest, countries, members_only=False)
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


def read_key_statement(path: Path) -> KeyStatement:
    try:
        return KeyStatement.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no key statement at {path}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not a key statement: {exc}") from exc


def rotation_statement_path(home: Home, key_id: str) -> Path:
    return home.path / "keys" / f"rotation-{key_id.replace(':', '-')}.json"


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
