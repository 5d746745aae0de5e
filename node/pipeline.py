"""The member node's pipeline: raw store -> policy -> events -> outbox -> Kafka.

``prepare_flow_events`` turns the stored records into the events the policy
lets out, compared with what was published before: new cells are revision 1,
changed cells get the next revision, cells that can no longer be published are
withdrawn. ``stage`` writes them and the ledger in one transaction; only then
does ``drain_outbox`` send them, marking each row acknowledged on the broker's
acknowledgement alone.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.codec.events import EventCodec
from node.crypto.sealing import seal
from node.crypto.signing import SigningKey
from node.model.events import Envelope, PolicyRef
from node.policy.flows import FlowCell, count_cells, suppress_small_cells
from node.policy.model import Policy
from node.store.node_store import NodeStore, StagedEvent
from node.transport.base import EventSink

FLOW_KIND = "FlowStatistic"
_PERIOD_TYPES = {"iso_week": "ISO_WEEK", "month": "MONTH", "quarter": "QUARTER"}


@dataclass(frozen=True)
class PublishPlan:
    """What one publish run would send, before anything is written."""

    events: list[StagedEvent]
    cells: int
    published_cells: int
    suppressed_cells: int
    new: int
    revised: int
    withdrawn: int


def flow_body(cell: FlowCell, country: str, policy: Policy) -> dict[str, Any]:
    dims = dict(cell.dimensions)
    return {
        "reporting_country": country,
        "period": cell.period,
        "period_type": _PERIOD_TYPES[policy.exchanges.flow_statistics.period],
        "nationality": dims.get("nationality"),
        "nationality_region": dims.get("nationality_region"),
        "sex": dims.get("sex"),
        "age_band": dims.get("age_band"),
        "previous_country": dims.get("previous_country"),
        "count": cell.count,
        "obs_status": "A",
    }


def _canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def restricted_aad(event_id: str, producer: str, kind: str, subject: str, revision: int) -> bytes:
    """What a sealed body is bound to: it cannot be replayed into another event."""
    return "|".join((event_id, producer, kind, subject, str(revision))).encode("utf-8")


class EventFactory:
    """Builds signed events for one node under one policy version."""

    def __init__(self, country: str, policy: Policy, key: SigningKey, codec: EventCodec) -> None:
        self.country = country
        self.policy = policy
        self.key = key
        self.codec = codec
        self.policy_ref = PolicyRef(policy.policy_id, policy.version, policy.sha256)
        self._key_bytes = country.encode("ascii")

    def build(
        self,
        kind: str,
        subject: str,
        revision: int,
        body: dict[str, Any] | None,
        content: str | None,
        now: datetime,
        seal_to: Mapping[str, X25519PublicKey] | None = None,
    ) -> StagedEvent:
        """Encode, (seal,) sign and wrap one event for the outbox.

        With ``seal_to`` (recipient key id -> X25519 key) the body is sealed so
        that only those recipients can read it; the sealed box is bound to the
        event's identity (see ``restricted_aad``) and the signature covers it.
        """
        rules = self.policy.exchange(kind)
        event_id = str(uuid.uuid4())
        body_bytes = self.codec.encode_body(kind, body) if body is not None else None
        if body_bytes is not None and seal_to is not None:
            aad = restricted_aad(event_id, self.country, kind, subject, revision)
            body_bytes = seal(body_bytes, dict(seal_to), aad).to_bytes()
        envelope = Envelope(
            event_id=event_id,
            producer=self.country,
            kind=kind,
            subject=subject,
            revision=revision,
            produced_at=now,
            policy=self.policy_ref,
            audiences=tuple(rules.audiences),
            purposes=tuple(rules.purposes),
            key_id=self.key.key_id,
            retain_until=rules.retain_until(now.date()),
            embargo_until=now + timedelta(days=rules.embargo_days) if rules.embargo_days else None,
            body=body_bytes,
        )
        env_bytes = self.codec.encode_envelope(envelope)
        value = self.codec.encode_signed(env_bytes, self.key.sign(env_bytes))
        return StagedEvent(
            event_id=event_id,
            kind=kind,
            subject=subject,
            revision=revision,
            content=content,
            policy_version=self.policy.version,
            key=self._key_bytes,
            value=value,
        )


def prepare_flow_events(
    store: NodeStore, factory: EventFactory, now: datetime | None = None
) -> PublishPlan:
    """Plan the flow-statistic events that bring the topic up to date."""
    now = now or datetime.now(UTC)
    rules = factory.policy.exchanges.flow_statistics
    country = factory.country
    if not rules.shared:
        return PublishPlan([], 0, 0, 0, 0, 0, 0)
    cells = count_cells(store.iter_flow_inputs(), rules)
    published, suppressed = suppress_small_cells(cells, rules.min_cell_size)
    ledger = store.ledger(FLOW_KIND)
    events: list[StagedEvent] = []
    new = revised = withdrawn = 0
    current: set[str] = set()
    for cell in published:
        subject = cell.subject(country)
        current.add(subject)
        body = flow_body(cell, country, factory.policy)
        content = _canonical(body)
        previous = ledger.get(subject)
        if previous is not None and previous[1] == content:
            continue
        revision = 1 if previous is None else previous[0] + 1
        if previous is None:
            new += 1
        else:
            revised += 1
        events.append(factory.build(FLOW_KIND, subject, revision, body, content, now))
    for subject, (last_revision, last_content) in sorted(ledger.items()):
        if subject not in current and last_content is not None:
            withdrawn += 1
            events.append(factory.build(FLOW_KIND, subject, last_revision + 1, None, None, now))
    return PublishPlan(events, len(cells), len(published), len(suppressed), new, revised, withdrawn)


@dataclass(frozen=True)
class DrainResult:
    sent: int
    acknowledged: int


def drain_outbox(
    store: NodeStore,
    sink: EventSink,
    *,
    batch_size: int = 5_000,
    progress: Callable[[int], None] | None = None,
) -> DrainResult:
    """Send every pending outbox row; mark rows acknowledged only on ack."""
    sent = acked = 0
    after = 0
    while True:
        rows = store.pending(limit=batch_size, after_seq=after)
        if not rows:
            break
        acks = sink.send_batch([(r.key, r.value) for r in rows])
        sent += len(rows)
        store.mark_acked(
            [(r.seq, a.topic, a.partition, a.offset) for r, a in zip(rows, acks, strict=True)]
        )
        acked += len(acks)
        after = rows[-1].seq
        if progress is not None:
            progress(len(rows))
    return DrainResult(sent, acked)
