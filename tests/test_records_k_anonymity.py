"""Issue 15, case 4: encounter records leave only in groups of at least k on
their published quasi-identifiers; the rest are held back (and withdrawn if
they had left). Groups are counted here from the events, not by the engine."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from node.config import policies_dir
from node.demo.synth import generate_encounters, write_csv
from node.home import event_codec
from node.member import preview as lib
from node.member.drain import drain_outbox
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.member.record_release import QUASI_IDENTIFIERS
from node.member.staging import stage_publication
from node.store.node_store import NodeStore
from node.transport.memory import MemorySink, MemoryTopic
from tests.factories import START


def _policy(tmp_path: Path, k: int | None) -> Path:
    data = yaml.safe_load((policies_dir() / "USA.yaml").read_text(encoding="utf-8"))
    if k is not None:
        data["exchanges"]["encounter_records"]["k_anonymity"] = k
    # k-anonymity on its own: TS, which gets the records, does not get the flows
    # here (else the records of unpublished flow cells are held back too: see
    # tests/test_sdc_records.py)
    data["exchanges"]["flow_statistics"]["audiences"] = ["members", "UNHCR"]
    path = tmp_path / "USA-k.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _published_groups(topic: MemoryTopic) -> Counter[tuple[object, ...]]:
    codec = event_codec()
    live: dict[str, dict[str, object] | None] = {}
    for message in topic.records:
        if not message.value:
            continue
        envelope = codec.decode_envelope(codec.split_signed(message.value)[0])
        if envelope.kind == "EncounterRecord":
            live[envelope.subject] = codec.decode_event(envelope).body
    return Counter(tuple(body.get(q) for q in QUASI_IDENTIFIERS) for body in live.values() if body)


@pytest.mark.parametrize("stagers", [1, 2])
def test_records_in_groups_below_k_are_held_back(tmp_path: Path, stagers: int) -> None:
    home = init_member(tmp_path / "usa", "USA", policy=_policy(tmp_path, 3))
    rows = generate_encounters("USA", 400, seed=4, start=START, weeks=2)
    # a group of three identical people (but for names and documents): it may leave
    for i in range(3):
        rows.append(rows[0] | {"record_id": f"USA-K-{i}", "document_number": f"K{i:07d}"})
    write_csv(rows, tmp_path / "usa.csv")
    assert ingest(home, tmp_path / "usa.csv").stored == len(rows)
    preview = lib.preview(home)
    records = next(e for e in preview["exchanges"] if e["kind"] == "EncounterRecord")
    assert records["k_anonymity"] == 3 and records["held_back"] > 0
    topic = MemoryTopic()
    with NodeStore(home.store_path) as store:
        plan, _ = stage_publication(
            home, store, home_policy(home), commit_chunks=stagers > 1, stagers=stagers
        )
        drain_outbox(store, MemorySink(topic))
    groups = _published_groups(topic)
    assert groups, "no record left: the test would prove nothing"
    assert min(groups.values()) >= 3, groups.most_common()[-3:]
    assert sum(groups.values()) + records["held_back"] == len(rows)
    assert plan.encounters is not None and plan.encounters.held_back == records["held_back"]


def test_a_record_sent_before_is_withdrawn_once_its_group_falls_below_k(tmp_path: Path) -> None:
    home = init_member(tmp_path / "usa", "USA", policy=_policy(tmp_path, 1))
    rows = generate_encounters("USA", 60, seed=5, start=START, weeks=1)
    write_csv(rows, tmp_path / "usa.csv")
    ingest(home, tmp_path / "usa.csv")
    topic = MemoryTopic()
    with NodeStore(home.store_path) as store:
        stage_publication(home, store, home_policy(home))
        drain_outbox(store, MemorySink(topic))
    assert sum(_published_groups(topic).values()) == len(rows)  # k = 1: all leave
    strict = _policy(tmp_path, 2)
    home.policy_path.write_text(strict.read_text(encoding="utf-8"), encoding="utf-8")
    with NodeStore(home.store_path) as store:
        stage_publication(home, store, home_policy(home))
        drain_outbox(store, MemorySink(topic))
    groups = _published_groups(topic)
    assert groups and min(groups.values()) >= 2


def test_k_defaults_to_the_minimum_cell_size(tmp_path: Path) -> None:
    """Issue 15: with no ``k_anonymity`` in the policy, k is the minimum cell
    size (USA's 10), not 1: no group smaller than a flow cell may leave."""
    home = init_member(tmp_path / "usa", "USA", policy=_policy(tmp_path, None))
    rows = generate_encounters("USA", 400, seed=4, start=START, weeks=2)
    for i in range(10):  # a group of ten identical people: it may leave
        rows.append(rows[0] | {"record_id": f"USA-K-{i}", "document_number": f"K{i:07d}"})
    write_csv(rows, tmp_path / "usa.csv")
    assert ingest(home, tmp_path / "usa.csv").stored == len(rows)
    policy = home_policy(home)
    minimum = policy.exchanges.flow_statistics.min_cell_size
    assert policy.exchanges.encounter_records.k_anonymity is None and minimum == 10
    records = next(e for e in lib.preview(home)["exchanges"] if e["kind"] == "EncounterRecord")
    assert records["k_anonymity"] == minimum and records["held_back"] > 0
    topic = MemoryTopic()
    with NodeStore(home.store_path) as store:
        stage_publication(home, store, policy)
        drain_outbox(store, MemorySink(topic))
    groups = _published_groups(topic)
    assert groups, "no record left: the test would prove nothing"
    assert min(groups.values()) >= minimum, groups.most_common()[-3:]
    assert sum(groups.values()) + records["held_back"] == len(rows)
