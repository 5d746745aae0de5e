"""Whether this node may sign now, and the factory that signs its events.

A node refuses to sign with a key its manifest revoked or that expired, and
takes a newer manifest from the control topic first, so that a revocation
reaches it before it publishes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from node.config import Home, key_passphrase
from node.crypto.signing import SigningKey, key_id_for, load_public_pem
from node.errors import CorredorError, KeyNotUsable
from node.federation import trust
from node.federation.control import sync_manifest
from node.home import event_codec
from node.member.event_factory import EventFactory
from node.policy.model import Policy
from node.transport import health

log = logging.getLogger(__name__)


def own_key_problem(home: Home) -> str | None:
    """Why this node must not sign with its key, from the manifest it holds
    (revoked, or expired now), or None. A home with no manifest, or one that
    does not list the key (not enrolled yet), has nothing to say here:
    ``doctor`` reports those."""
    if not home.manifest_path.exists() or not home.public_key_path.is_file():
        return None
    try:
        manifest = trust.current_manifest(home)
        key_id = key_id_for(home.country, load_public_pem(home.public_key_path.read_bytes()))
    except CorredorError:
        return None  # doctor names a manifest that does not verify
    found = manifest.signing_key(key_id)
    if found is None:
        return None
    entry = found[1]
    state = entry.state_at(datetime.now(UTC))
    if state == "valid":
        return None
    when = entry.revoked_at if state == "revoked" else entry.valid_until
    stamp = when.isoformat(timespec="seconds") if when is not None else "?"
    return (
        f"this node's signing key {key_id} is {state} (since {stamp}) in the federation's "
        f"manifest, serial {manifest.serial}: the aggregator trusts nothing it signs. "
        "Refusing to publish with it: rotate it (`corredor keys rotate`), send "
        "keys/signing.pub to the Secretariat, and run `corredor federation sync` once the "
        "new key is in the manifest"
    )


def check_own_key(home: Home) -> None:
    """Raise ``KeyNotUsable`` if the manifest revoked or expired this node's key."""
    problem = own_key_problem(home)
    if problem is not None:
        raise KeyNotUsable(problem)


def refresh_manifest(home: Home, bootstrap: str | None = None) -> None:
    """Take a newer manifest from the control topic, if the home pins the
    Secretariat's key to verify it: a revocation reaches the node before it
    publishes. A missing, unreadable or unverifiable one leaves the home's
    manifest as it is (``doctor`` reports it); so does a broker that does not
    accept a connection at once (the publish then stages and waits, as ever,
    rather than spend the client's bootstrap timeout here first)."""
    if not home.secretariat_pub_path.is_file():
        return
    try:
        health.reachable(bootstrap or home.bootstrap, timeout_s=2.0)
        _, updated = sync_manifest(home, bootstrap=bootstrap)
    except CorredorError as exc:
        log.debug("manifest not refreshed from the control topic: %s", exc)
        return
    if updated:
        log.info("took a newer manifest from %s", home.config.kafka.control_topic)


def event_factory(home: Home, policy: Policy) -> EventFactory:
    key = SigningKey.load(home.country, home.signing_key_path, key_passphrase())
    return EventFactory(home.country, policy, key, event_codec(), seal_batch=home.config.seal_batch)
