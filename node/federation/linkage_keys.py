"""The regional linkage key as a home holds it: created by one member, sealed in a
signed bundle to every other member whose membership verifies, and accepted
only from such a member. The Secretariat never holds it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from node.config import Home, key_passphrase
from node.crypto import linkage
from node.crypto.sealing import SealedBox, open_sealed, seal
from node.crypto.signing import load_public_pem, verify
from node.errors import ConfigError, CryptoError, SignatureInvalid
from node.federation import manifest as fed
from node.federation import trust_ledger as ledger
from node.federation.trust import (
    current_manifest,
    load_encryption_key,
    load_signing_key,
    sealing_targets,
    trust_view,
)

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
    targets = sealing_targets(home, manifest, others, members_only=True)
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


def linkage_recipients(home: Home) -> list[str]:
    """The members `linkage share` would seal to now: those whose membership
    and encryption key verify under quorum."""
    manifest = current_manifest(home)
    others = {m.country for m in manifest.members if m.country != home.country}
    return sorted(sealing_targets(home, manifest, others, members_only=True))


def new_linkage_recipients(home: Home, countries: list[str]) -> list[str]:
    """Those of ``countries`` this node never sealed the linkage key to."""
    path = ledger.linkage_recipients_path(home)
    before = set(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else set()
    return sorted(set(countries) - before)


def remember_linkage_recipients(home: Home, countries: list[str]) -> None:
    path = ledger.linkage_recipients_path(home)
    before = set(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else set()
    fed.write_json(path, json.dumps(sorted(before | set(countries))))
