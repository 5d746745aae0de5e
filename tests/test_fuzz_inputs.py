"""Fuzzed input: every bad row, policy or message gives a located error or a
dead letter, and nothing valid is lost."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.aggregator.apply import Aggregator
from node.demo.synth import generate_encounters
from node.errors import InputError, PolicyError
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member.ingest import ingest_encounters
from node.model.records import ENCOUNTER_COLUMNS
from node.policy.loader import load_policy
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySource, MemoryTopic
from tests.factories import START

GOOD = generate_encounters("PAN", 40, seed=5, start=START, weeks=2)

junk_field = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(["", "\x00", "NUL\x00x", "1990-02-30", "X" * 5000, "ÑAÑU", '"', "\r\n"]),
)
junk_row = st.lists(junk_field, min_size=0, max_size=14)


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(ENCOUNTER_COLUMNS)
    for row in rows:
        writer.writerow(row)
    return buf.getvalue().encode("utf-8", errors="surrogatepass")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.lists(junk_row, max_size=25), raw_tail=st.binary(max_size=200))
def test_junk_rows_are_rejected_and_good_rows_all_stored(
    tmp_path_factory: pytest.TempPathFactory,
    junk: list[list[str]],
    raw_tail: bytes,
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    good_rows = [[r[c] for c in ENCOUNTER_COLUMNS] for r in GOOD]
    mixed: list[list[str]] = []
    for i, row in enumerate(good_rows):
        mixed.append(row)
        if i < len(junk):
            mixed.append(junk[i])
    data = _csv_bytes(mixed) + raw_tail.replace(b"\n", b" ").replace(b"\r", b" ")
    path = tmp / "enc.csv"
    path.write_bytes(data)
    with NodeStore(tmp / "node.db") as store:
        report = ingest_encounters(path, store, tmp / "rejects")
        ids = {r["record_id"] for r in GOOD}
        assert store.count_encounters() >= len(ids)
        # Every good record made it, whatever surrounded it.
        stored = {row[0] for row in store.connection.execute("SELECT record_id FROM raw_encounter")}
        assert ids <= stored
    for rej in report.rejected:
        assert rej.file == str(path) and rej.line >= 2 and rej.reason


@settings(max_examples=80, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=12), children, max_size=5),
        ),
        max_leaves=20,
    )
)
def test_any_yaml_document_is_a_located_policy_error_or_a_policy(
    tmp_path_factory: pytest.TempPathFactory,
    document: object,
) -> None:
    path = tmp_path_factory.mktemp("pol") / "XXX.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        load_policy(path)
    except PolicyError as exc:
        assert str(path) in str(exc)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_as_a_policy_file_are_a_located_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("pol") / "PAN.yaml"
    path.write_bytes(data)
    try:
        load_policy(path)
    except PolicyError as exc:
        assert str(path) in str(exc)


def test_garbage_messages_never_stop_the_aggregator(tmp_path: Path) -> None:
    from tests.factories import aggregator_for, member_with_data

    pan, _, _ = member_with_data(tmp_path, "PAN", 600)
    agg = aggregator_for(tmp_path, [pan])
    topic = MemoryTopic()
    from node.member.drain import drain_outbox
    from node.transport.memory import MemorySink

    with NodeStore(pan.store_path) as store:
        drain_outbox(store, MemorySink(topic))
    valid = [m.value for m in topic.records]

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.binary(max_size=300), max_size=10), st.integers(0, 40))
    def run(garbage: list[bytes], cut: int) -> None:
        mixed = MemoryTopic()
        for g in garbage:
            mixed.append(b"PAN", g)
        for v in valid:
            mixed.append(b"PAN", v)
        if valid:
            mixed.append(b"PAN", (valid[0] or b"")[:cut])
        with PictureStore(agg.store_path) as store:
            stats = Aggregator(
                store, event_codec(), trust.key_directory(agg), floor=regional_floor()
            ).apply_batch(MemorySource(mixed).poll_batch(0, 10**6))
        assert stats.messages == len(mixed.records)
        assert (
            stats.applied + stats.duplicates + stats.stale + stats.rejected_total == stats.messages
        )
        with PictureStore(agg.store_path) as store:
            assert store.counts()["events_applied"] == len(valid)

    run()


def test_input_error_names_file_line_and_field() -> None:
    err = InputError("Input should be 'F', 'M' or 'X'", file="enc.csv", line=7, field="sex")
    assert str(err) == "enc.csv:7: field 'sex': Input should be 'F', 'M' or 'X'"
