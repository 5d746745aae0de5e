"""The encounter records a publish lets out, pseudonymised, and those held back.

A record leaves only from a flow cell its audience reads as a cell of its
own, and only in a group of at least k on the published quasi-identifiers
(``held_back_records``). ``EncounterStream`` builds the rest a chunk at a
time, diffed against the ledger (``node.member.ledger_diff``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from node.member.event_factory import ENCOUNTER_KIND, FLOW_KIND, EventFactory
from node.member.ledger_diff import LedgerDiff, diff_stream, egress_guard, ledger_withdrawals
from node.model.codes import is_iso3
from node.policy.atoms import AtomKey, atom_of
from node.policy.guard import EgressGuard, Refusal
from node.policy.ledger import BlockLedger
from node.policy.model import Policy
from node.policy.records import (
    EncounterInput,
    Gazetteer,
    Linker,
    record_subject,
    transform_encounter,
)
from node.policy.release import FlowRelease
from node.store.node_store import NodeStore, StagedEvent


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
        # only the quasi-identifiers are read: no pseudonym is computed
        body = transform_encounter(
            record,
            rules,
            policy.country,
            pseudonym_key=_NO_KEY,
            linker=None,
            gazetteer=gazetteer,
            pseudonyms=False,
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
        self._tally = LedgerDiff()
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
        specs = diff_stream(
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
    # Live subjects only: any non-None content marks them live for ``ledger_withdrawals``.
    ledger: dict[str, tuple[int, str | None]] = {
        subject: (revision, "") for subject, revision in live.items()
    }
    specs = list(ledger_withdrawals(ENCOUNTER_KIND, current, ledger, guard, LedgerDiff()))
    return factory.build_many(ENCOUNTER_KIND, specs, now)
