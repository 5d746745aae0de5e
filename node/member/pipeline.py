"""The member node's pipeline: raw store -> policy -> events -> outbox -> Kafka.

``prepare_flow_events`` turns the stored records into the events the policy
lets out, compared with what was published before: new cells are revision 1,
changed cells get the next revision, cells that can no longer be published are
withdrawn. ``stage`` writes them and the ledger in one transaction; only then
does ``drain_outbox`` send them, marking each row acknowledged on the broker's
acknowledgement alone.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from node.codec.events import EventCodec
from node.crypto.batch_seal import seal_batch
from node.crypto.sealing import seal
from node.crypto.signing import SigningKey
from node.model.codes import is_iso3
from node.model.events import RESTRICTED_KINDS, Envelope, PolicyRef
from node.model.ids import new_event_id
from node.policy import privacy
from node.policy.flows import AtomKey, BlockLedger, FlowCell, atom_of
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
from node.policy.release import FlowRelease, release_flows
from node.store.node_store import NodeStore, OutboxRow, PrivacyStaging, StagedEvent
from node.transport.base import Ack, EventSink

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
    #: The encounter records staged with this plan (set by a publish).
    encounters: EncounterPlan | None = None
    #: Noisy trees and privacy budget spent, staged with the events
    #: (method: differential_privacy); None under suppression.
    privacy: PrivacyStaging | None = None
    #: Every event a publish staged: statistics after holds, reference items
    #: and encounter records (set by a publish; ``events`` holds only the first).
    staged: int = 0


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
    } | _noise_fields(cell)


def _noise_fields(cell: FlowCell) -> dict[str, Any]:
    """FlowStatistic v2's fields of a noisy cell (obs_status N); none for an
    exact or rounded one, whose body stays as v1 wrote it (same content, so no
    revision is sent for it on upgrade)."""
    if cell.ci95 is None:
        return {}
    return {
        "obs_status": "N",
        "ci95_low": cell.ci95[0],
        "ci95_high": cell.ci95[1],
        "noise_mechanism": "discrete_laplace",
        "noise_scale": cell.noise_scale,
        "epsilon": cell.epsilon,
    }


def _canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def restricted_aad(event_id: str, producer: str, kind: str, subject: str, revision: int) -> bytes:
    """What a sealed body is bound to: it cannot be replayed into another event."""
    return "|".join((event_id, producer, kind, subject, str(revision))).encode("utf-8")


class EventFactory:
    """Builds signed events for one node under one policy version."""

    def __init__(
        self,
        country: str,
        policy: Policy,
        key: SigningKey,
        codec: EventCodec,
        *,
        seal_batch: int = 0,
    ) -> None:
        """``seal_batch`` > 0: ``build_many`` signs one batch seal per that many
        events (when the codec can write SignedEvent v2), not each event."""
        self.country = country
        self.seal_batch = seal_batch if codec.can_seal else 0
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
        event_id, envelope = self._envelope(kind, subject, revision, body, now, seal_to)
        env_bytes = self.codec.encode_envelope(envelope)
        value = self.codec.encode_signed(env_bytes, self.key.sign(env_bytes))
        return self._staged(event_id, kind, subject, revision, content, value)

    def build_many(self, kind: str, specs: Sequence[EventSpec], now: datetime) -> list[StagedEvent]:
        """Encode and sign a run of unsealed events of one kind: under batch
        seals, one Ed25519 signature per ``seal_batch`` events, each event
        carrying its Merkle inclusion proof (node.crypto.batch_seal)."""
        if self.seal_batch <= 0:
            return [self.build(kind, *spec, now) for spec in specs]
        out: list[StagedEvent] = []
        # Every event of the run shares its envelope but for id, subject,
        # revision and body: encode the rest once (node.codec.templates).
        template = self.codec.envelope_template(self._envelope(kind, "", 0, None, now, None)[1])
        encode_body = self.codec.encode_body
        for start in range(0, len(specs), self.seal_batch):
            batch = specs[start : start + self.seal_batch]
            ids = [new_event_id() for _ in batch]
            env_bytes = [
                template(
                    event_id,
                    subject,
                    revision,
                    None if body is None else encode_body(kind, body),
                )
                for event_id, (subject, revision, body, _) in zip(ids, batch, strict=True)
            ]
            signature, proofs = seal_batch(self.key, env_bytes)
            for event_id, spec, data, proof in zip(ids, batch, env_bytes, proofs, strict=True):
                subject, revision, _, content = spec
                value = self.codec.encode_signed(data, signature, proof)
                out.append(self._staged(event_id, kind, subject, revision, content, value))
        return out

    def _envelope(
        self,
        kind: str,
        subject: str,
        revision: int,
        body: dict[str, Any] | None,
        now: datetime,
        seal_to: Mapping[str, X25519PublicKey] | None,
    ) -> tuple[str, Envelope]:
        rules = self.policy.exchange(kind)
        event_id = new_event_id()
        body_bytes = self.codec.encode_body(kind, body) if body is not None else None
        audiences = tuple(rules.audiences)
        if seal_to is not None or kind in RESTRICTED_KINDS:
            # Who a sealed report is for stays inside the box: named countries
            # travel as "members" (the floor's group for them), not by code.
            audiences = tuple(sorted({"members" if is_iso3(a) else a for a in audiences}))
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
            audiences=audiences,
            purposes=tuple(rules.purposes),
            key_id=self.key.key_id,
            retain_until=rules.retain_until(now.date()),
            embargo_until=now + timedelta(days=rules.embargo_days) if rules.embargo_days else None,
            body=body_bytes,
        )
        return event_id, envelope

    def _staged(
        self,
        event_id: str,
        kind: str,
        subject: str,
        revision: int,
        content: str | None,
        value: bytes,
    ) -> StagedEvent:
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


def allowed_by_kind(policy: Policy, *, linkage: bool = False) -> dict[str, frozenset[str]]:
    """The body fields the policy lets each kind carry."""
    return {
        FLOW_KIND: policy.exchanges.flow_statistics.output_fields(),
        ENCOUNTER_KIND: allowed_fields(policy.exchanges.encounter_records, linkage),
    }


def egress_guard(store: NodeStore, policy: Policy, *, linkage: bool = False) -> EgressGuard:
    """The guard for one publish run: the node's identifying values, normalised
    once, and the fields the policy allows per kind."""
    return EgressGuard(store.identifying_values(), allowed_by_kind(policy, linkage=linkage))


def plan_flow_release(
    store: NodeStore, policy: Policy, today: date | None = None
) -> FlowRelease:
    """What the flow-statistics rules publish and hide now, against the last release."""
    rules = policy.exchanges.flow_statistics
    if rules.method == "differential_privacy":
        states = store.privacy_states(privacy.EXCHANGE)
        return release_flows(
            store.iter_flow_inputs(), rules, privacy_states=states, today=today
        )
    ledger = {
        block: BlockLedger.from_json(entry)
        for block, entry in store.suppression_ledger(FLOW_KIND).items()
    }
    return release_flows(store.iter_flow_inputs(), rules, ledger)


def privacy_staging(store: NodeStore, policy: Policy, release: FlowRelease) -> PrivacyStaging:
    """What a noisy release writes to the privacy ledger, once the budget of
    every audience is checked (``privacy.PrivacyBudgetExceeded`` otherwise)."""
    assert release.private is not None
    rules = policy.exchanges.flow_statistics
    new = privacy.check_budget(
        rules, release.private.spends, store.privacy_charged(privacy.EXCHANGE)
    )
    return PrivacyStaging(
        privacy.EXCHANGE,
        dict(release.private.states),
        [(s.audience, s.period, s.measurement, s.epsilon) for s in new],
    )


#: (subject, revision, body, content) of one event to build; body and content
#: are None for a withdrawal.
EventSpec = tuple[str, int, dict[str, Any] | None, str | None]


@dataclass
class _Diff:
    events: list[StagedEvent] = field(default_factory=list)
    new: int = 0
    revised: int = 0
    withdrawn: int = 0
    refused: list[Refusal] = field(default_factory=list)
    #: Subjects the guard refused (a refused subject published before is withdrawn).
    refused_subjects: list[str] = field(default_factory=list)


def _diff_stream(
    kind: str,
    candidates: Iterable[tuple[str, dict[str, Any]]],
    ledger: Mapping[str, tuple[int, str | None]],
    guard: EgressGuard,
    tally: _Diff,
    *,
    withdraw: bool = True,
) -> Iterator[EventSpec]:
    """New subjects at revision 1, changed ones at the next revision, vanished
    ones withdrawn (once every candidate is seen, unless ``withdraw`` is off
    because the candidates are only part of the kind); every event through the
    egress guard first. Counts go to ``tally`` as the stream is read."""
    current: set[str] = set()
    for subject, body in candidates:
        refusal = guard.problem(kind, subject, body)
        if refusal is not None:
            guard.admit(kind, subject, body)  # logs it, without the value
            tally.refused.append(refusal)
            tally.refused_subjects.append(subject)
            continue
        current.add(subject)
        content = _canonical(body)
        previous = ledger.get(subject)
        if previous is not None and previous[1] == content:
            continue
        if previous is None:
            tally.new += 1
            yield subject, 1, body, content
        else:
            tally.revised += 1
            yield subject, previous[0] + 1, body, content
    if withdraw:
        yield from _withdrawals(kind, current, ledger, guard, tally)


def _withdrawals(
    kind: str,
    current: set[str],
    ledger: Mapping[str, tuple[int, str | None]],
    guard: EgressGuard,
    tally: _Diff,
) -> Iterator[EventSpec]:
    """A withdrawal for every live subject of the ledger no longer current."""
    for subject, (last_revision, last_content) in sorted(ledger.items()):
        if subject not in current and last_content is not None:
            if not guard.admit(kind, subject, None):
                continue
            tally.withdrawn += 1
            yield subject, last_revision + 1, None, None


def _against_ledger(
    kind: str,
    candidates: list[tuple[str, dict[str, Any]]],
    ledger: Mapping[str, tuple[int, str | None]],
    factory: EventFactory,
    guard: EgressGuard,
    now: datetime,
) -> _Diff:
    """Every event of the diff, built (see ``_diff_stream``)."""
    out = _Diff()
    out.events = factory.build_many(
        kind, list(_diff_stream(kind, candidates, ledger, guard, out)), now
    )
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
    release = plan_flow_release(store, policy, now.date())
    staging = privacy_staging(store, policy, release) if release.private is not None else None
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
        privacy=staging,
    )


@dataclass(frozen=True)
class EncounterPlan:
    """Pseudonymised encounter records one publish sent to the outbox."""

    records: int
    new: int
    revised: int
    withdrawn: int
    refused: int
    refusals: tuple[Refusal, ...]
    linkage_tokens: bool  # whether tokens are added (policy allows and a key is present)
    samples: tuple[dict[str, Any], ...] = ()
    #: Records held back: their group on the quasi-identifiers is below k.
    held_back: int = 0

    @property
    def staged(self) -> int:
        return self.new + self.revised + self.withdrawn


#: EncounterRecord body fields an outsider can match a person on (the
#: quasi-identifiers): everything but pseudonyms, tokens and the reporter.
QUASI_IDENTIFIERS = (
    "encounter_period",
    "age",
    "age_band",
    "sex",
    "nationality",
    "nationality_region",
    "place",
    "previous_country",
)


_NO_KEY = bytes(32)


def k_anonymity(policy: Policy) -> int:
    """Records per group of published quasi-identifiers a record needs to leave:
    the policy's ``k_anonymity``, by default its minimum cell size (that of the
    flow statistics: a group smaller than it is a cell the flows never show)."""
    rules = policy.exchanges.encounter_records
    if rules.k_anonymity is not None:
        return rules.k_anonymity
    return policy.exchanges.flow_statistics.min_cell_size


def records_see_flows(policy: Policy) -> bool:
    """Whether an audience of the encounter records also receives the flow
    statistics (named countries are among "members"; "public" is everyone)."""
    flows = policy.exchanges.flow_statistics
    records = policy.exchanges.encounter_records
    if not (flows.shared and records.shared and records.audiences):
        return False

    def group(audiences: Iterable[str]) -> set[str]:
        return {a for a in audiences} | {"members" for a in audiences if is_iso3(a)}

    flow_audiences = group(flows.audiences)
    return "public" in flow_audiences or bool(flow_audiences & group(records.audiences))


def published_alone(
    store: NodeStore, policy: Policy, flows: FlowRelease | None = None
) -> dict[AtomKey, int]:
    """Fine flow cells published as a cell of their own, with their count: of
    ``flows`` when given (a release not yet staged), else of the release the
    suppression ledger holds (the one staged last)."""
    out: dict[AtomKey, int] = {}
    if policy.exchanges.flow_statistics.method == "differential_privacy":
        return out  # no count is published exact (an old suppression ledger is stale)
    if flows is not None:
        blocks = [(b.atoms, b.cells) for b in flows.blocks.values()]
    else:
        ledgers = [BlockLedger.from_json(e) for e in store.suppression_ledger(FLOW_KIND).values()]
        blocks = [(entry.atoms, list(entry.cells)) for entry in ledgers]
    for atoms, cells in blocks:
        for _level, members in cells:
            if len(members) == 1:
                (atom,) = members
                out[atom] = atoms[atom]
    return out


def held_back_records(
    store: NodeStore,
    policy: Policy,
    gazetteer: Gazetteer,
    flows: FlowRelease | None = None,
) -> frozenset[str]:
    """Record ids held back, never sent (and a record sent before is withdrawn):

    1. when an audience of the records also receives the flow statistics
       (``records_see_flows``), every record whose fine flow cell is not
       published as a cell of its own with its current, exact count: counting
       the records sent would otherwise give that audience a hidden count, or
       a sum over hidden counts. So the records sent tell the audience nothing
       about the flow cells it did not already read in the flows (with
       rounding above 1 no published count is exact: every record is held);
    2. of the rest, every record whose group on the published quasi-identifiers
       is smaller than k (``k_anonymity``). Generalising them further is not
       attempted: a record at a coarser level beside its group at the finer
       one could be subtracted.

    ``flows`` is the flow release this publish stages (see ``published_alone``)."""
    rules = policy.exchanges.encounter_records
    k = k_anonymity(policy)
    if not rules.shared:
        return frozenset()
    flow_rules = policy.exchanges.flow_statistics
    pinned: set[str] = set()
    if records_see_flows(policy):
        alone = published_alone(store, policy, flows) if flow_rules.rounding <= 1 else {}
        atom_of_record: dict[str, AtomKey] = {}
        current: dict[AtomKey, int] = {}
        for rid, _doc, born, sex, nat, met, _place, previous in store.iter_encounter_inputs():
            atom = atom_of((nat, sex, born, met, previous), flow_rules)
            atom_of_record[rid] = atom
            current[atom] = current.get(atom, 0) + 1
        pinned = {
            rid
            for rid, atom in atom_of_record.items()
            if atom not in alone or alone[atom] != current[atom]
        }
    if k <= 1:
        return frozenset(pinned)
    groups: dict[tuple[Any, ...], list[str]] = {}
    for row in store.iter_encounter_inputs():
        record = EncounterInput(*row)
        if record.record_id in pinned:
            continue
        # only the quasi-identifiers are read: no pseudonym key is needed
        body = transform_encounter(
            record, rules, policy.country, pseudonym_key=_NO_KEY, linker=None, gazetteer=gazetteer
        )
        key = tuple(body.get(name) for name in QUASI_IDENTIFIERS)
        groups.setdefault(key, []).append(record.record_id)
    small = {rid for ids in groups.values() if len(ids) < k for rid in ids}
    return frozenset(pinned | small)


def encounter_candidates(
    store: NodeStore,
    policy: Policy,
    country: str,
    *,
    pseudonym_key: bytes,
    linker: Linker | None,
    gazetteer: Gazetteer,
    after: str = "",
    upto: str | None = None,
    held: frozenset[str] = frozenset(),
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(subject, body) of every raw record under the encounter-record rules,
    streamed; with ``after``/``upto``, of the record ids in that range only;
    records in ``held`` (see ``held_back_records``) are left out."""
    rules = policy.exchanges.encounter_records
    for row in store.iter_encounter_inputs(after=after, upto=upto):
        record = EncounterInput(*row)
        if record.record_id in held:
            continue
        body = transform_encounter(
            record, rules, country, pseudonym_key=pseudonym_key, linker=linker, gazetteer=gazetteer
        )
        # The subject's pseudonym is the body's, when the policy sends it.
        pseudonym = body.get("record_pseudonym")
        yield (
            (
                f"EncounterRecord|{country}|{pseudonym}"
                if pseudonym
                else record_subject(country, pseudonym_key, record.record_id)
            ),
            body,
        )


class EncounterStream:
    """The EncounterRecord events the policy lets out (none unless shared), built
    a chunk at a time so that a publish can commit and send each chunk while
    the next is built, and never holds every event in memory.

    Iterate ``chunks()`` to the end, then read ``plan()``."""

    def __init__(
        self,
        store: NodeStore,
        factory: EventFactory,
        *,
        pseudonym_key: bytes,
        linker: Linker | None,
        gazetteer: Gazetteer,
        guard: EgressGuard | None = None,
        now: datetime | None = None,
        chunk_size: int = 2_000,
        after: str = "",
        upto: str | None = None,
        withdraw: bool = True,
    ) -> None:
        """With ``after``/``upto``, only the records in that record-id range
        (one part of a publish staged in parallel); ``withdraw`` off leaves
        withdrawals to whoever sees every part (``encounter_withdrawals``)."""
        self.after = after
        self.upto = upto
        self.withdraw = withdraw
        self.store = store
        self.factory = factory
        self.pseudonym_key = pseudonym_key
        self.linker = linker
        self.gazetteer = gazetteer
        rules = factory.policy.exchanges.encounter_records
        self.linking = rules.linkage_tokens and linker is not None
        self.guard = guard or egress_guard(store, factory.policy, linkage=self.linking)
        self.now = now or datetime.now(UTC)
        self.chunk_size = chunk_size
        self._tally = _Diff()
        self._records = 0
        self._held = 0
        self._samples: list[dict[str, Any]] = []
        self._done = False

    def _candidates(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self.factory.policy.exchanges.encounter_records.shared:
            return
        held = held_back_records(self.store, self.factory.policy, self.gazetteer)
        self._held = sum(
            1 for rid in held if self.after < rid and (self.upto is None or rid <= self.upto)
        )
        for subject, body in encounter_candidates(
            self.store,
            self.factory.policy,
            self.factory.country,
            pseudonym_key=self.pseudonym_key,
            linker=self.linker,
            gazetteer=self.gazetteer,
            after=self.after,
            upto=self.upto,
            held=held,
        ):
            self._records += 1
            if len(self._samples) < 3:
                self._samples.append(body)
            yield subject, body

    def chunks(self) -> Iterator[list[StagedEvent]]:
        ledger = self.store.ledger(ENCOUNTER_KIND)
        specs = _diff_stream(
            ENCOUNTER_KIND,
            self._candidates(),
            ledger,
            self.guard,
            self._tally,
            withdraw=self.withdraw,
        )
        while batch := list(itertools.islice(specs, self.chunk_size)):
            yield self.factory.build_many(ENCOUNTER_KIND, batch, self.now)
        self._done = True

    @property
    def refused_subjects(self) -> list[str]:
        return list(self._tally.refused_subjects)

    def plan(self) -> EncounterPlan:
        if not self._done:
            raise RuntimeError("EncounterStream.plan() before its chunks were all read")
        t = self._tally
        return EncounterPlan(
            self._records,
            t.new,
            t.revised,
            t.withdrawn,
            len(t.refused),
            tuple(t.refused),
            self.linking,
            tuple(self._samples),
            held_back=self._held,
        )


def encounter_withdrawals(
    store: NodeStore,
    factory: EventFactory,
    *,
    pseudonym_key: bytes,
    guard: EgressGuard,
    refused_subjects: Iterable[str],
    now: datetime,
    held: Iterable[str] = (),
) -> list[StagedEvent]:
    """Withdrawals of EncounterRecord subjects no stored record produces now,
    for a publish whose parts were staged apart (``EncounterStream`` with
    ``withdraw`` off): the current subjects are those of every stored record
    (none when the policy no longer shares them) less the ones refused."""
    live = store.live_subjects(ENCOUNTER_KIND)
    if not live:  # nothing published, nothing to withdraw (a first publish)
        return []
    current: set[str] = set()
    if factory.policy.exchanges.encounter_records.shared:
        kept_back = set(held)
        current = {
            record_subject(factory.country, pseudonym_key, rid)
            for rid in store.record_ids()
            if rid not in kept_back
        }
        current.difference_update(refused_subjects)
    # Live subjects only: any non-None content marks them live for _withdrawals.
    ledger: dict[str, tuple[int, str | None]] = {
        subject: (revision, "") for subject, revision in live.items()
    }
    specs = list(_withdrawals(ENCOUNTER_KIND, current, ledger, guard, _Diff()))
    return factory.build_many(ENCOUNTER_KIND, specs, now)


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
    staging_done: Callable[[], bool] | None = None,
    idle_s: float = 0.01,
) -> DrainResult:
    """Send every pending outbox row; mark rows acknowledged only on ack.

    Batches overlap: the next batch is handed to the producer before the
    previous one's acknowledgements are awaited and recorded, so the producer
    is never left idle while SQLite works. With ``staging_done``, keep
    draining what a concurrent stager commits until it reports done and the
    outbox is empty.

    The whole drain holds the home's drain lock (``NodeStore.drain_lock``):
    a second drainer waits for it, then sends only what is still unacknowledged,
    so no row is sent by two drainers at once."""
    with store.drain_lock():
        return _drain_locked(store, sink, batch_size, progress, staging_done, idle_s)


def _drain_locked(
    store: NodeStore,
    sink: EventSink,
    batch_size: int,
    progress: Callable[[int], None] | None,
    staging_done: Callable[[], bool] | None,
    idle_s: float,
) -> DrainResult:
    sent = acked = 0
    after = 0
    inflight: tuple[list[OutboxRow], Callable[[], list[Ack]]] | None = None
    while True:
        done = staging_done is None or staging_done()  # read before looking, never after
        rows = store.pending(limit=batch_size, after_seq=after)
        if rows:
            waiter = sink.submit([(r.key, r.value) for r in rows])
            sent += len(rows)
            after = rows[-1].seq
        if inflight is not None:
            acked += _record_acks(store, *inflight, progress)
            inflight = None
        if rows:
            inflight = (rows, waiter)
        elif done:
            return DrainResult(sent, acked)
        else:
            time.sleep(idle_s)


def _record_acks(
    store: NodeStore,
    rows: list[OutboxRow],
    wait: Callable[[], list[Ack]],
    progress: Callable[[int], None] | None,
) -> int:
    acks = wait()
    store.mark_acked(
        [(r.seq, a.topic, a.partition, a.offset) for r, a in zip(rows, acks, strict=True)],
        rows,
    )
    if progress is not None:
        progress(len(rows))
    return len(acks)
