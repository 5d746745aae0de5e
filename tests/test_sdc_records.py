"""Issue 15, case 2: the encounter records sent to an audience must not undo the
flow suppression of the statistics sent to the same audience.

The test reads what TS sees on the topic (flow cells and encounter records,
decoded here from the Avro events), counts the true fine cells from the raw
rows itself, and solves with the independent attacker of tests/sdc_attacker.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from node.config import Home, policies_dir
from node.demo.synth import generate_encounters, write_csv
from node.home import event_codec
from node.member import preview as lib
from node.member.drain import drain_outbox
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.member.staging import stage_publication
from node.model.codes import age_at, age_band, iso_week
from node.policy.loader import load_policy
from node.store.node_store import NodeStore
from node.transport.memory import MemorySink, MemoryTopic
from tests.factories import START
from tests.sdc_attacker import Atom, Seen, attack, narrow

NAMES = ["nationality", "sex", "age_band", "previous_country"]


def _atom(row: dict[str, str]) -> Atom:
    met = date.fromisoformat(row["encounter_date"])
    band = age_band(age_at(date.fromisoformat(row["date_of_birth"]), met))
    return (
        iso_week(met),
        (row["nationality"], row["sex"], band, row["previous_country"] or "_U"),
    )


def _live(topic: MemoryTopic) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """subject -> (kind, body) of every subject's last event (None: withdrawn)."""
    codec = event_codec()
    live: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for message in topic.records:
        if not message.value:
            continue
        envelope = codec.decode_envelope(codec.split_signed(message.value)[0])
        body = codec.decode_event(envelope).body if envelope.body is not None else None
        live[envelope.subject] = (envelope.kind, body)
    return live


def _margins(atoms: dict[Atom, int]) -> list[tuple[frozenset[Atom], int]]:
    """USA's public margins: weekly totals, and weekly totals by nationality."""
    groups: dict[Any, set[Atom]] = {}
    for atom in atoms:
        groups.setdefault(("all", atom[0]), set()).add(atom)
        groups.setdefault(("nat", atom[0], atom[1][0]), set()).add(atom)
    return [(frozenset(g), sum(atoms[a] for a in g)) for g in groups.values()]


def _seen(topic: MemoryTopic, rows: list[dict[str, str]]) -> Seen:
    """What TS holds after a publish: the live flow cells and the records."""
    atoms = dict(Counter(_atom(r) for r in rows))
    cells: list[tuple[str, dict[str, str], int]] = []
    seen_records: Counter[Atom] = Counter()
    for kind, body in _live(topic).values():
        if body is None:
            continue
        if kind == "FlowStatistic":
            dims = {
                name: body[name]
                for name in ("nationality", "nationality_region", *NAMES[1:])
                if body.get(name) is not None
            }
            cells.append((body["period"], dims, int(body["count"])))
        elif kind == "EncounterRecord":
            # TS reads week, nationality, sex, age band and previous country
            seen_records[
                (
                    body["encounter_period"],
                    (body["nationality"], body["sex"], body["age_band"], body["previous_country"]),
                )
            ] += 1
    assert cells, "no flow cell left: the test would prove nothing"
    assert seen_records, "no record left: the test would prove nothing"
    assert set(seen_records) <= set(atoms)
    # Records are known from below: TS cannot tell how many were held back.
    records = [(frozenset({a}), n) for a, n in seen_records.items()]
    return Seen(atoms, cells, _margins(atoms), at_least=records)


def _publish(home: Home, topic: MemoryTopic, stagers: int) -> None:
    with NodeStore(home.store_path) as store:
        stage_publication(
            home, store, home_policy(home), commit_chunks=stagers > 1, stagers=stagers
        )
        drain_outbox(store, MemorySink(topic))


@pytest.mark.parametrize("stagers", [1, 2])
def test_records_do_not_undo_flow_suppression_under_usa_policy(
    tmp_path: Path, stagers: int
) -> None:
    policy = policies_dir() / "USA.yaml"
    rules = load_policy(policy).exchanges.flow_statistics
    assert "TS" in rules.audiences
    assert "TS" in load_policy(policy).exchanges.encounter_records.audiences
    home = init_member(tmp_path / "usa", "USA", policy=policy)
    rows = generate_encounters("USA", 160, seed=15, start=START, weeks=1)
    # a cell large enough to be published alone (its records may leave), and
    # beside it, in the same week and nationality, a small one for certain
    big = rows[0]
    for i in range(24):
        rows.append(big | {"record_id": f"USA-B-{i:02d}", "document_number": f"B{i:07d}"})
    small = big | {"sex": "X" if big["sex"] != "X" else "F"}
    for i in range(2):
        rows.append(small | {"record_id": f"USA-S-{i}", "document_number": f"S{i:07d}"})
    write_csv(rows, tmp_path / "usa.csv")
    assert ingest(home, tmp_path / "usa.csv").stored == len(rows)
    preview = lib.preview(home)
    held = next(e for e in preview["exchanges"] if e["kind"] == "EncounterRecord")["held_back"]
    topic = MemoryTopic()
    _publish(home, topic, stagers)
    seen = [_seen(topic, rows)]
    # preview said how many records the publish would hold back
    assert held > 0 and sum(n for _, n in seen[0].at_least) + held == len(rows)
    # late records: the small cell grows past the minimum, others grow a little
    late = [small | {"record_id": f"USA-L-{i}", "document_number": f"L{i:07d}"} for i in range(9)]
    late += generate_encounters("USA", 200, seed=15, start=START, weeks=1)[160:]
    write_csv(late, tmp_path / "late.csv")
    assert ingest(home, tmp_path / "late.csv").stored == len(late)
    rows += late
    _publish(home, topic, stagers)
    seen.append(_seen(topic, rows))

    bare = [Seen(s.atoms, [], s.margins) for s in seen]
    minimum = rules.min_cell_size
    level = rules.protection or minimum
    found = attack(seen, NAMES, minimum=minimum)
    small_hidden = [v for v in found if seen[v[0]].atoms[v[1]] < minimum]
    assert small_hidden, "no small hidden cell: the test would prove nothing"
    # what the public margins alone pin is not the flows' nor the records' doing
    baseline = attack(bare, NAMES, minimum=minimum)
    leaks = narrow(found, level, baseline)
    assert leaks == [], f"{len(leaks)} hidden cells pinned or narrowed, e.g. {leaks[:3]}"
