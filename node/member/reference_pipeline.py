"""Reference events: what the node's reference data and its policy let out.

For each reference kind the policy's exchange rules decide (``Policy.exchange``):
an exchange not shared publishes nothing, and withdraws what it published
before. For a shared exchange, compared with the publication ledger:

- an item never published is revision 1;
- an item whose content changed (re-ingested or corrected) is the next
  revision, which replaces the earlier one in the picture;
- an item withdrawn by the operator is the next revision with no body.

Restricted kinds (``IntelligenceReport``) never leave in clear: the envelope
body carries the record sealed to the recipients' X25519 keys (see
``node.federation.trust.restricted_recipients``); without recipients they are held back
and counted, never sent unsealed.

Manual holds on computed subjects (flow-statistic cells an operator withdrew)
are applied by ``apply_holds``: the held cell is withdrawn once and never
published again while held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.member.event_factory import EventFactory
from node.model.reference import REFERENCE_MODELS
from node.policy.guard import EgressGuard
from node.store.node_store import NodeStore, StagedEvent
from node.store.reference import ReferenceStore, canonical

#: Seals a restricted body for the rules' audiences: (kind, subject, body) -> bytes.
Sealer = Callable[[str, str, dict[str, object]], bytes]


@dataclass
class KindCounts:
    items: int = 0
    new: int = 0
    revised: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    shared: bool = False
    held_restricted: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "shared": self.shared,
            "items": self.items,
            "new": self.new,
            "revised": self.revised,
            "withdrawn": self.withdrawn,
            "unchanged": self.unchanged,
            "held_restricted": self.held_restricted,
            "refused": self.refused,
        }


@dataclass
class ReferencePlan:
    events: list[StagedEvent] = field(default_factory=list)
    kinds: dict[str, KindCounts] = field(default_factory=dict)

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {kind: c.as_dict() for kind, c in self.kinds.items()}


def prepare_reference_events(
    references: ReferenceStore,
    store: NodeStore,
    factory: EventFactory,
    now: datetime | None = None,
    recipients: Mapping[str, X25519PublicKey] | None = None,
    guard: EgressGuard | None = None,
) -> ReferencePlan:
    """Plan the reference events that bring the topic up to date.

    With ``guard``, every item passes the egress guard like any other event:
    one carrying a raw identifying value of the node's records is refused
    (counted in ``refused``) and never staged.

    ``recipients`` (key id -> X25519 key, from the manifest) are who restricted
    kinds are sealed to; without them restricted items are held back."""
    now = now or datetime.now(UTC)
    plan = ReferencePlan()
    for model in REFERENCE_MODELS:
        kind = model.KIND
        rules = factory.policy.exchange(kind)
        counts = KindCounts(shared=rules.shared)
        plan.kinds[kind] = counts
        ledger = store.ledger(kind)
        items = references.items(kind)
        counts.items = sum(1 for i in items if not i.withdrawn)
        live: set[str] = set()
        if rules.shared:
            for stored in items:
                if stored.withdrawn:
                    continue
                if model.RESTRICTED and not recipients:
                    # Never unsealed: without recipients' keys it waits.
                    counts.held_restricted += 1
                    continue
                body = stored.item.to_avro()
                if guard is not None:
                    guard.allow(kind, body)
                    if not guard.admit(kind, stored.subject, body):
                        counts.refused += 1
                        continue
                live.add(stored.subject)
                content = canonical(stored.item.model_dump(mode="json"))
                previous = ledger.get(stored.subject)
                if previous is not None and previous[1] == content:
                    counts.unchanged += 1
                    continue
                revision = 1 if previous is None else previous[0] + 1
                if previous is None:
                    counts.new += 1
                else:
                    counts.revised += 1
                plan.events.append(
                    factory.build(
                        kind,
                        stored.subject,
                        revision,
                        body,
                        content,
                        now,
                        seal_to=recipients if model.RESTRICTED else None,
                    )
                )
        for subject, (last_revision, last_content) in sorted(ledger.items()):
            if subject not in live and last_content is not None:
                counts.withdrawn += 1
                plan.events.append(factory.build(kind, subject, last_revision + 1, None, None, now))
    return plan


def apply_holds(
    events: list[StagedEvent],
    held: set[str],
    ledger: dict[str, tuple[int, str | None]],
    factory: EventFactory,
    kind: str,
    now: datetime | None = None,
) -> tuple[list[StagedEvent], int]:
    """Drop planned events of held subjects; withdraw held subjects still live.

    Returns the events to stage and how many withdrawals the holds added.
    """
    now = now or datetime.now(UTC)
    kept = [e for e in events if e.subject not in held]
    planned_withdrawals = {e.subject for e in events if e.content is None}
    added = 0
    for subject in sorted(held):
        previous = ledger.get(subject)
        if previous is None or previous[1] is None:
            continue
        if subject in planned_withdrawals:
            kept.append(next(e for e in events if e.subject == subject))
            continue
        kept.append(factory.build(kind, subject, previous[0] + 1, None, None, now))
        added += 1
    return kept, added


def plan_with_reference(
    store: NodeStore,
    factory: EventFactory,
    flow_events: list[StagedEvent],
    flow_kind: str,
    recipients: Mapping[str, X25519PublicKey] | None = None,
    guard: EgressGuard | None = None,
) -> tuple[list[StagedEvent], ReferencePlan]:
    """Everything one publish stages: the flow events minus held cells (plus the
    withdrawals holds add), then the reference events."""
    with ReferenceStore(store.path, conn=store.connection) as references:
        events, _ = apply_holds(
            flow_events, references.held(flow_kind), store.ledger(flow_kind), factory, flow_kind
        )
        reference = prepare_reference_events(
            references, store, factory, recipients=recipients, guard=guard
        )
    return events + reference.events, reference
