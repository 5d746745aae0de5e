"""The federation's verbs on the compacted control topic.

Every node reads the same topic: the Secretariat's signed manifests (one
record per serial, and the newest under ``manifest``), the members' approvals
of pending changes and their own key revocations, the regional linkage key
sealed to each member, and the audit heads every party signs of its own log.
Each verb here puts one statement on it (``_put_on_control_topic``) or reads
it back, verified: a manifest only under the pinned Secretariat key and its
hash chain, approvals and revocations when the trust view is computed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from node.config import Home
from node.crypto.linkage import KeyBundle
from node.errors import ConfigError, CorredorError, SignatureInvalid
from node.federation import (
    anchors,
    drafts,
    linkage_keys,
    manifest_diff,
    membership,
    statements,
    trust,
    trust_ledger,
)
from node.home import require_aggregator, require_member
from node.model.manifest import Manifest, SignedManifest
from node.transport.kafka_admin import ensure_topic
from node.transport.kafka_consumer import read_all, read_latest
from node.transport.kafka_producer import publish_record

log = logging.getLogger(__name__)
#: The long-running loops' logger: the audit-head anchor ticks in them.
loop_log = logging.getLogger("corredor.follow")


# -- the manifest on the control topic -------------------------------------------------

MANIFEST_KEY = b"manifest"


def _control_topic(home: Home) -> str:
    return home.config.kafka.control_topic


def _ensure_control_topic(home: Home, address: str, security: dict[str, Any] | None) -> str:
    """The compacted control topic (manifest, linkage keys), created if missing."""
    topic = _control_topic(home)
    ensure_topic(
        address,
        topic,
        partitions=1,
        replication=home.config.kafka.replication,
        configs={"cleanup.policy": "compact"},
        security=security,
    )
    return topic


def _put_on_control_topic(home: Home, key: bytes, value: bytes, bootstrap: str | None) -> None:
    """One statement under ``key`` on the control topic, created if missing."""
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    publish_record(
        address, _ensure_control_topic(home, address, security), key, value, security=security
    )


def publish_manifest(home: Home, *, bootstrap: str | None = None) -> str:
    """Put the Secretariat's current signed manifest on the compacted control topic."""
    require_aggregator(home)
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    topic = _ensure_control_topic(home, address, security)
    value = home.manifest_path.read_bytes()
    serial = trust.current_manifest(home).serial
    # The history stays on the compacted topic (one key per serial), so a node
    # that missed serials walks the hash chain from its last head. Serials
    # signed but never published go out too (the same bytes again are harmless).
    published = set(_published_serials(address, topic, security))
    for signed in drafts.signed_history(home):
        older = Manifest.model_validate_json(signed.payload).serial
        if older < serial and older not in published:
            data = signed.model_dump_json(indent=2).encode("utf-8")
            publish_record(address, topic, history_key(older), data, security=security)
    publish_record(address, topic, history_key(serial), value, security=security)
    publish_record(address, topic, MANIFEST_KEY, value, security=security)
    return topic


def _published_serials(address: str, topic: str, security: dict[str, Any] | None) -> list[int]:
    out = []
    for msg in read_all(address, topic, security=security):
        if msg.key is not None and msg.key.startswith(b"manifest/"):
            tail = msg.key.split(b"/", 1)[1]
            if tail.isdigit():
                out.append(int(tail))
    return out


def history_key(serial: int) -> bytes:
    return f"manifest/{serial:012d}".encode("ascii")


APPROVAL_PREFIX = b"approval/"


@dataclass
class SyncResult:
    manifest: Manifest
    updated: bool
    changes: list[str]  # the diff against the manifest held before
    view: membership.TrustView
    approvals_read: int = 0


def sync_manifest(home: Home, *, bootstrap: str | None = None) -> tuple[Manifest, bool]:
    """Take the newest manifest from the control topic if the pinned key signed it."""
    result = sync_federation(home, bootstrap=bootstrap)
    return result.manifest, result.updated


def _signed(value: bytes | None, topic: str, key: bytes) -> SignedManifest:
    try:
        return SignedManifest.model_validate_json(value or b"")
    except ValueError as exc:
        raise ConfigError(f"the record {key.decode()} on {topic} is malformed: {exc}") from exc


def sync_federation(home: Home, *, bootstrap: str | None = None) -> SyncResult:
    """Read the control topic: approvals, the manifest history from this home's
    last head to the newest, each verified (pinned key, hash chain); then the
    trust view and what changed. An equivocation raises ManifestAlarm and
    leaves the last good manifest current."""
    address = bootstrap or home.bootstrap
    topic = _control_topic(home)
    records = read_all(address, topic, security=home.kafka_security())
    old = trust.current_manifest(home) if home.manifest_path.exists() else None
    old_view = trust.trust_view(home, old) if old is not None else None
    read = _store_statements(home, records)
    # Every manifest record, in the order written (not only the newest per
    # key): two manifests with one serial are seen even before compaction, and
    # a record someone without the Secretariat's key wrote is skipped.
    found = updated = False
    for msg in records:
        if msg.key is None or not msg.value:
            continue
        if msg.key != MANIFEST_KEY and not msg.key.startswith(b"manifest/"):
            continue
        try:
            signed = _signed(msg.value, topic, msg.key)
            updated |= trust.accept_manifest(home, signed)[1]
            found = True
        except (ConfigError, SignatureInvalid, ValueError) as exc:
            key = msg.key.decode("utf-8", "replace")
            log.warning("skipped %s at offset %d on %s: %s", key, msg.offset, topic, exc)
    if not found:
        raise ConfigError(f"no manifest on {topic} yet")
    anchors.collect(home, anchors.parse(records))
    manifest = trust.current_manifest(home)
    view = trust.trust_view(home, manifest)
    # What changed since the manifest held before, then what still lacks
    # quorum (printed on every sync until it is resolved).
    changes = manifest_diff.diff(old, old_view, manifest, view)
    return SyncResult(manifest, updated, changes, view, read)


REVOCATION_PREFIX = b"revocation/"


def _store_statements(home: Home, records: list[Any]) -> int:
    """Keep the approvals and self-revocations read (verified when the trust
    view is computed); returns how many were new."""
    new = 0
    for msg in records:
        if msg.key is None or not msg.value:
            continue
        try:
            if msg.key.startswith(APPROVAL_PREFIX):
                approval = statements.Approval.model_validate_json(msg.value)
                new += trust_ledger.store_approval(home, approval)
            elif msg.key.startswith(REVOCATION_PREFIX):
                revocation = statements.SelfRevocation.model_validate_json(msg.value)
                new += trust_ledger.store_revocation(home, revocation)
        except ValueError:
            continue
    return new


def refresh_approvals(home: Home, address: str, security: dict[str, Any] | None) -> int:
    """Keep the approvals and revocations on the control topic in this home."""
    return _store_statements(home, read_all(address, _control_topic(home), security=security))


def revoke_own_key(
    home: Home, key_id: str | None = None, *, bootstrap: str | None = None
) -> statements.SelfRevocation:
    """A member revokes its own key, on the control topic: no quorum needed."""
    revocation = trust.revoke_own(require_member(home), key_id)
    key = REVOCATION_PREFIX + f"{revocation.country}/{revocation.key_id}".encode("ascii")
    _put_on_control_topic(home, key, revocation.to_json().encode("utf-8"), bootstrap)
    return revocation


def approve_change(home: Home, change_id: str, *, bootstrap: str | None = None) -> Any:
    """Sign this member's approval of a pending change and put it on the control
    topic, where every node (and the Secretariat) reads it."""
    approval = trust.approve(require_member(home), change_id)
    key = APPROVAL_PREFIX + f"{approval.change_id}/{approval.approver}".encode("ascii")
    _put_on_control_topic(home, key, approval.to_json().encode("utf-8"), bootstrap)
    return approval


# -- the regional linkage key on the control topic ------------------------------------

LINKAGE_KEY = b"linkage-key"


def share_linkage_key(home: Home, *, bootstrap: str | None = None) -> list[str]:
    """Publish this node's linkage key, sealed to each member, on the control topic.
    The Secretariat relays the topic but cannot open the bundle."""
    bundle, countries = linkage_keys.bundle_linkage_key(require_member(home))
    _put_on_control_topic(home, LINKAGE_KEY, bundle.to_json().encode("utf-8"), bootstrap)
    return countries


def sync_linkage_key(home: Home, *, bootstrap: str | None = None) -> tuple[str, bool]:
    """Take the linkage key bundle from the control topic, verified and opened."""
    value = read_latest(
        bootstrap or home.bootstrap,
        _control_topic(home),
        LINKAGE_KEY,
        security=home.kafka_security(),
    )
    if value is None:
        raise ConfigError("no linkage key has been shared on the control topic yet")
    return linkage_keys.accept_linkage_bundle(require_member(home), KeyBundle.from_json(value))


# -- audit heads anchored on the control topic ---------------------------------------


def publish_audit_head(home: Home, *, bootstrap: str | None = None) -> anchors.HeadStatement:
    """Sign this home's audit head (with the heads it witnessed of others) and
    put it on the control topic."""
    statement = anchors.own_statement(home)
    key = anchors.HEAD_PREFIX + statement.party.encode("ascii")
    _put_on_control_topic(home, key, statement.model_dump_json().encode(), bootstrap)
    return statement


def federation_anchors(home: Home, *, bootstrap: str | None = None) -> list[tuple[str, str]]:
    """(witness, "seq:hash") of this home's audit head as other parties signed it."""
    address = bootstrap or home.bootstrap
    records = read_all(address, _control_topic(home), security=home.kafka_security())
    statements = anchors.parse(records)
    anchors.collect(home, statements)
    return anchors.witnessed_anchors(home, statements)


# -- the audit head anchored on a timer, from the long-running loops -------------


class HeadAnchor:
    """Puts this home's signed audit head on the control topic every
    ``audit_head_interval_s`` (docs/security.md, *Audit heads anchored outside
    the writer*). A failure is logged and tried again a minute later: a
    missed anchor must never stop a loop that moves data."""

    RETRY_S = 60.0

    def __init__(self, home: Home, bootstrap: str | None) -> None:
        self.home = home
        self.bootstrap = bootstrap
        self.interval_s = float(home.config.audit_head_interval_s)
        self.published = 0
        self._due = time.monotonic()  # the first one as soon as the loop runs

    def tick(self) -> None:
        if self.interval_s <= 0 or time.monotonic() < self._due:
            return
        try:
            statement = publish_audit_head(self.home, bootstrap=self.bootstrap)
        except CorredorError as exc:
            loop_log.warning("could not publish the audit head, will retry: %s", exc)
            self._due = time.monotonic() + min(self.interval_s, self.RETRY_S)
            return
        self.published += 1
        head = statement.audit
        loop_log.info(
            "published the audit head %s", f"{head.seq}:{head.entry_hash}" if head else "-"
        )
        self._due = time.monotonic() + self.interval_s
