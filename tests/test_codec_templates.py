"""The batch encoders write exactly what fastavro writes: the hand-built
envelope and sealed wrapper are only a shortcut, never another encoding."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, date, datetime, timedelta

from fastavro import schemaless_reader
from hypothesis import given
from hypothesis import strategies as st

from node.codec.templates import zigzag_varint
from node.crypto.batch_seal import SealProof
from node.home import event_codec
from node.model.events import Envelope, PolicyRef

CODEC = event_codec()
SHARED = Envelope(
    event_id="",
    producer="USA",
    kind="EncounterRecord",
    subject="",
    revision=0,
    produced_at=datetime(2026, 11, 27, 23, 0, tzinfo=UTC),
    policy=PolicyRef("USA", "2024.1", "ab" * 32),
    audiences=("members", "TS"),
    purposes=("statistics",),
    key_id="USA:0123456789abcdef",
    retain_until=date(2031, 11, 27),
    embargo_until=datetime(2026, 12, 4, tzinfo=UTC),
)
TEMPLATE = CODEC.envelope_template(SHARED)


@given(n=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_zigzag_varint_reads_back_as_an_avro_long(n: int) -> None:
    assert schemaless_reader(io.BytesIO(zigzag_varint(n)), "long", None) == n


@given(
    event_id=st.text(max_size=40),
    subject=st.text(max_size=200),
    revision=st.integers(min_value=0, max_value=2**62),
    body=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_envelope_template_equals_fastavro(
    event_id: str, subject: str, revision: int, body: bytes | None
) -> None:
    expected = CODEC.encode_envelope(
        dataclasses.replace(
            SHARED, event_id=event_id, subject=subject, revision=revision, body=body
        )
    )
    assert TEMPLATE(event_id, subject, revision, body) == expected


def test_a_template_without_retention_or_embargo_also_matches() -> None:
    bare = dataclasses.replace(
        SHARED, retain_until=None, embargo_until=None, kind="FlowStatistic", audiences=()
    )
    template = CODEC.envelope_template(bare)
    env = dataclasses.replace(bare, event_id="x", subject="FlowStatistic|USA|2024-W01", revision=3)
    assert template("x", "FlowStatistic|USA|2024-W01", 3, None) == CODEC.encode_envelope(env)
    produced = SHARED.produced_at + timedelta(days=1)
    moved = CODEC.envelope_template(dataclasses.replace(SHARED, produced_at=produced))
    assert moved("a", "b", 1, b"c") != TEMPLATE("a", "b", 1, b"c")


@given(
    envelope=st.binary(max_size=400),
    signature=st.binary(min_size=64, max_size=64),
    tree_size=st.integers(min_value=1, max_value=2**40),
    data=st.data(),
)
def test_sealed_wrapper_equals_fastavro(
    envelope: bytes, signature: bytes, tree_size: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=tree_size - 1))
    path = tuple(data.draw(st.lists(st.binary(min_size=32, max_size=32), max_size=12)))
    proof = SealProof(tree_size, index, path)
    assert CODEC.encode_signed(envelope, signature, proof) == CODEC._encode_sealed_avro(
        envelope, signature, proof
    )
    assert CODEC.split_sealed(CODEC.encode_signed(envelope, signature, proof)) == (
        envelope,
        signature,
        proof,
    )
