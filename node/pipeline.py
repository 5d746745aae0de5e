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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.codec.events import EventCodec
from node.crypto.sealing import seal
from node.crypto.signing import SigningKey
from node.model.events import Envelope, PolicyRef
from node.policy.flows import BlockLedger, FlowCell, FlowRelease, release_flows
from node.policy.guard import EgressGuard, Refusal
from node.policy.model import Policy
from node.policy.records import (
    EncounterInput,
    Gazetteer,
    Linker,
    allowed_fields,
    record_subject,
    transform_encounter,
)
from node.store.node_store import NodeStore, StagedEvent
from node.transport.base import EventSink

FLOW_KIND = "FlowStatistic"
ENCOUNTER_KIND = "EncounterRecord"
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
    coarsened_cells: int = 0
    secondary_suppressed: int = 0
    refused: int = 0
    refusals: tuple[Refusal, ...] = ()
    #: (kind, block) -> suppression ledger entry, staged with the events.
    suppression: Mapping[tuple[str, str], str] = field(default_factory=dict)
    release: FlowRelease | None = None


def flow_body(cell: FlowCell, country: str, policy: Policy) -> dict[str, Any]:
    dims = dict(cell.dimensions)
    return {
        "reporting_country": country,
        "period": cell.period,
        "period_type": _PERIOD_TYPES[cell.period_type],
        "nationality": dims.get("nationality"),
        "nationality_region": dims.get("nationality_region"),
        "sex": dims.get("sex"),
        "age_band": dims.get("age_band"),
        "previous_country": dims.get("previous_country"),
        "count": cell.count,
        "obs_status": "E" if cell.estimated else "A",
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


def egress_guard(store: NodeStore, policy: Policy, *, linkage: bool = False) -> EgressGuard:
    """The guard for one publish run: the node's identifying values, normalised
    once, and the fields the policy allows per kind."""
    allowed = {
        FLOW_KIND: policy.exchanges.flow_statistics.output_fields(),
        ENCOUNTER_KIND: allowed_fields(policy.exchanges.encounter_records, linkage),
    }
    return EgressGuard(store.identifying_values(), allowed)


def plan_flow_release(store: NodeStore, policy: Policy) -> FlowRelease:
    """What the flow-statistics rules publish and hide now, against the last release."""
    ledger = {
        block: BlockLedger.from_json(entry)
        for block, entry in store.suppression_ledger(FLOW_KIND).items()
    }
    return release_flows(store.iter_flow_inputs(), policy.exchanges.flow_statistics, ledger)


@dataclass
class _Diff:
    events: list[StagedEvent] = field(default_factory=list)
    new: int = 0
    revised: int = 0
    withdrawn: int = 0
    refused: list[Refusal] = field(default_factory=list)


def _against_ledger(
    kind: str,
    candidates: list[tuple[str, dict[str, Any]]],
    ledger: Mapping[str, tuple[int, str | None]],
    factory: EventFactory,
    guard: EgressGuard,
    now: datetime,
) -> _Diff:
    """New subjects at revision 1, changed ones at the next revision, vanished
    ones withdrawn; every event through the egress guard first."""
    out = _Diff()
    current: set[str] = set()
    for subject, body in candidates:
        refusal = guard.problem(kind, subject, body)
        if refusal is not None:
            guard.admit(kind, subject, body)  # logs it, without the value
            out.refused.append(refusal)
            continue
        current.add(subject)
        content = _canonical(body)
        previous = ledger.get(subject)
        if previous is not None and previous[1] == content:
            continue
        revision = 1 if previous is None else previous[0] + 1
        if previous is None:
            out.new += 1
        else:
            out.revised += 1
        out.events.append(factory.build(kind, subject, revision, body, content, now))
    for subject, (last_revision, last_content) in sorted(ledger.items()):
        if subject not in current and last_content is not None:
            if not guard.admit(kind, subject, None):
                continue
            out.withdrawn += 1
            out.events.append(factory.build(kind, subject, last_revision + 1, None, None, now))
    return out


def prepare_flow_events(
    store: NodeStore,
    factory: EventFactory,
    now: datetime | None = None,
    *,
    guard: EgressGuard | None = None,
) -> PublishPlan:
    """Plan the flow-statistic events that bring the topic up to date: cells the
    policy publishes after coarsening, primary and secondary suppression and
    rounding, each through the egress guard."""
    now = now or datetime.now(UTC)
    policy = factory.policy
    rules = policy.exchanges.flow_statistics
    country = factory.country
    guard = guard or egress_guard(store, policy)
    ledger = store.ledger(FLOW_KIND)
    if not rules.shared:
        diff = _against_ledger(FLOW_KIND, [], ledger, factory, guard, now)
        return PublishPlan(diff.events, 0, 0, 0, 0, 0, diff.withdrawn)
    release = plan_flow_release(store, policy)
    candidates = [
        (cell.subject(country), flow_body(cell, country, policy)) for cell in release.cells
    ]
    diff = _against_ledger(FLOW_KIND, candidates, ledger, factory, guard, now)
    summary = release.summary()
    return PublishPlan(
        diff.events,
        summary["cells"],
        summary["published_cells"] - len(diff.refused),
        summary["suppressed_cells"],
        diff.new,
        diff.revised,
        diff.withdrawn,
        coarsened_cells=summary["coarsened_cells"],
        secondary_suppressed=summary["secondary_suppressed"],
        refused=len(diff.refused),
        refusals=tuple(diff.refused),
        suppression={
            (FLOW_KIND, block): b.ledger.to_json()
            for block, b in release.blocks.items()
            if b.ledger is not None
        },
        release=release,
    )


@dataclass(frozen=True)
class EncounterPlan:
    """Pseudonymised encounter records one publish would send."""

    events: list[StagedEvent]
    records: int
    new: int
    revised: int
    withdrawn: int
    refused: int
    refusals: tuple[Refusal, ...]
    linkage_tokens: bool  # whether tokens are added (policy allows and a key is present)
    samples: tuple[dict[str, Any], ...] = ()


def encounter_candidates(
    store: NodeStore,
    policy: Policy,
    country: str,
    *,
    pseudonym_key: bytes,
    linker: Linker | None,
    gazetteer: Gazetteer,
) -> list[tuple[str, dict[str, Any]]]:
    """(subject, body) of every raw record under the encounter-record rules."""
    rules = policy.exchanges.encounter_records
    out = []
    for row in store.iter_encounter_inputs():
        record = EncounterInput(*row)
        body = transform_encounter(
            record, rules, country, pseudonym_key=pseudonym_key, linker=linker, gazetteer=gazetteer
        )
        out.append((record_subject(country, pseudonym_key, record.record_id), body))
    return out


def prepare_encounter_events(
    store: NodeStore,
    factory: EventFactory,
    *,
    pseudonym_key: bytes,
    linker: Linker | None,
    gazetteer: Gazetteer,
    guard: EgressGuard | None = None,
    now: datetime | None = None,
) -> EncounterPlan:
    """Plan the EncounterRecord events the policy lets out (none unless shared)."""
    now = now or datetime.now(UTC)
    policy = factory.policy
    rules = policy.exchanges.encounter_records
    linking = rules.linkage_tokens and linker is not None
    guard = guard or egress_guard(store, policy, linkage=linking)
    candidates = (
        encounter_candidates(
            store,
            policy,
            factory.country,
            pseudonym_key=pseudonym_key,
            linker=linker,
            gazetteer=gazetteer,
        )
        if rules.shared
        else []
    )
    ledger = store.ledger(ENCOUNTER_KIND)
    diff = _against_ledger(ENCOUNTER_KIND, candidates, ledger, factory, guard, now)
    return EncounterPlan(
        diff.events,
        len(candidates),
        diff.new,
        diff.revised,
        diff.withdrawn,
        len(diff.refused),
        tuple(diff.refused),
        linking,
        tuple(body for _, body in candidates[:3]),
    )


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
