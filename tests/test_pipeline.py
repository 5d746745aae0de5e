"""The stages together without Kafka: node -> in-memory topic -> aggregator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from node.aggregator.apply import Aggregator
from node.aggregator.stats import ApplyStats
from node.config import Home
from node.crypto.signing import SigningKey
from node.demo.synth import generate_encounters, write_csv
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member.intake import ingest
from node.model.events import Envelope
from node.store.picture import PictureStore
from node.transport.memory import MemorySource, MemoryTopic
from tests.factories import (
    START,
    aggregator_for,
    expected_flow_totals,
    member_with_data,
    picture_totals,
    publish_flows_to,
)


def _apply(agg_home: Home, topic: MemoryTopic, start: int = 0) -> ApplyStats:
    with PictureStore(agg_home.store_path) as store:
        aggregator = Aggregator(
            store, event_codec(), trust.key_directory(agg_home), floor=regional_floor()
        )
        source = MemorySource(topic, committed=start)
        return aggregator.apply_batch(source.poll_batch(0, 10**9))


def _totals(agg_home: Home) -> Counter[tuple[str, str]]:
    return Counter({(p, n): c for (p, _rc, n), c in picture_totals(agg_home).items()})


def _totals_for(agg_home: Home, country: str) -> Counter[tuple[str, str]]:
    totals = picture_totals(agg_home)
    return Counter({(p, n): c for (p, rc, n), c in totals.items() if rc == country})


def test_picture_equals_counts_from_raw_files(tmp_path: Path) -> None:
    topic = MemoryTopic()
    members = [
        member_with_data(tmp_path, c, 600, seed=3, detail_only=True)[0:2] for c in ("PAN", "GTM")
    ]
    agg = aggregator_for(tmp_path, [h for h, _ in members])
    for home, _ in members:
        publish_flows_to(home, topic)
    stats = _apply(agg, topic)
    assert stats.rejected_total == 0 and stats.applied == len(topic.records)
    for home, rows in members:
        assert _totals_for(agg, home.country) == expected_flow_totals(home.country, rows)


def test_redelivery_changes_nothing(tmp_path: Path) -> None:
    topic = MemoryTopic()
    home, _rows, _ = member_with_data(tmp_path, "PAN", 400)
    agg = aggregator_for(tmp_path, [home])
    publish_flows_to(home, topic)
    _apply(agg, topic)
    before = _totals(agg)
    again = _apply(agg, topic)
    assert again.applied == 0 and again.duplicates == len(topic.records)
    assert _totals(agg) == before


def test_new_records_give_revisions_not_double_counts(tmp_path: Path) -> None:
    topic = MemoryTopic()
    home, rows, _ = member_with_data(tmp_path, "PAN", 500, seed=11, detail_only=True)
    agg = aggregator_for(tmp_path, [home])
    publish_flows_to(home, topic)
    first = len(topic.records)
    publish_flows_to(home, topic)
    assert len(topic.records) == first, "publishing unchanged data sends nothing"
    more = generate_encounters("PAN", 900, seed=11, start=START, weeks=6)[500:]
    extra = tmp_path / "more.csv"
    write_csv(more, extra)
    ingest(home, extra)
    publish_flows_to(home, topic)
    _apply(agg, topic)
    assert _totals(agg) == expected_flow_totals("PAN", rows + more)


def test_out_of_order_revisions_keep_the_latest(tmp_path: Path) -> None:
    topic = MemoryTopic()
    home, rows, _ = member_with_data(tmp_path, "PAN", 500, seed=5, detail_only=True)
    agg = aggregator_for(tmp_path, [home])
    publish_flows_to(home, topic)
    more = generate_encounters("PAN", 800, seed=5, start=START, weeks=6)[500:]
    extra = tmp_path / "more.csv"
    write_csv(more, extra)
    ingest(home, extra)
    publish_flows_to(home, topic)
    # deliver the second release first, then the first
    reordered = MemoryTopic()
    reordered.records = list(reversed(topic.records))
    stats = _apply(agg, reordered)
    assert stats.stale > 0
    assert _totals(agg) == expected_flow_totals("PAN", rows + more)


def _forge(
    topic: MemoryTopic,
    tmp_path: Path,
    *,
    sign_with: SigningKey | None,
    claim: str,
    key_id: str | None = None,
) -> None:
    """A valid-Avro event claiming ``claim`` as producer."""
    codec = event_codec()
    real = codec.decode_envelope(codec.split_signed(topic.records[0].value or b"")[0])
    body = codec.encode_body(
        "FlowStatistic",
        {
            "reporting_country": claim,
            "period": "2024-W02",
            "period_type": "ISO_WEEK",
            "nationality": "CUB",
            "count": 999_999,
        },
    )
    env = Envelope(
        **{
            **real.__dict__,
            "event_id": "forged-" + claim,
            "producer": claim,
            "subject": f"FlowStatistic|{claim}|2024-W02|forged",
            "body": body,
            "key_id": key_id or (sign_with.key_id if sign_with else real.key_id),
        }
    )
    env_bytes = codec.encode_envelope(env)
    signature = sign_with.sign(env_bytes) if sign_with else None
    topic.append(claim.encode(), codec.encode_signed(env_bytes, signature))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other-key-claims-pan-key-id", "bad-signature"),
        ("gtm-key-claims-pan", "producer-mismatch"),
        ("unknown-key", "unknown-key"),
        ("unsigned", "unsigned"),
    ],
)
def test_forged_events_are_set_aside_with_a_reason(tmp_path: Path, case: str, reason: str) -> None:
    topic = MemoryTopic()
    pan, _, _ = member_with_data(tmp_path, "PAN", 300)
    gtm, _, _ = member_with_data(tmp_path, "GTM", 300)
    agg = aggregator_for(tmp_path, [pan, gtm])
    publish_flows_to(pan, topic)
    honest = len(topic.records)
    pan_key_id = SigningKey.load("PAN", pan.signing_key_path).key_id
    intruder = SigningKey.generate("PAN")
    if case == "other-key-claims-pan-key-id":
        _forge(topic, tmp_path, sign_with=intruder, claim="PAN", key_id=pan_key_id)
    elif case == "gtm-key-claims-pan":
        _forge(topic, tmp_path, sign_with=SigningKey.load("GTM", gtm.signing_key_path), claim="PAN")
    elif case == "unknown-key":
        _forge(topic, tmp_path, sign_with=intruder, claim="PAN")
    else:
        _forge(topic, tmp_path, sign_with=None, claim="PAN")
    topic.append(b"PAN", b"\xc3\x01 garbage")
    stats = _apply(agg, topic)
    assert stats.applied == honest
    assert stats.rejected == {reason: 1, "undecodable": 1}
    with PictureStore(agg.store_path) as store:
        assert all(c["count"] != 999_999 for c in store.flow_cells())
        assert [r["reason"] for r in store.rejected()] == [reason, "undecodable"]


def test_replay_with_different_content_is_set_aside(tmp_path: Path) -> None:
    topic = MemoryTopic()
    pan, _, _ = member_with_data(tmp_path, "PAN", 300)
    agg = aggregator_for(tmp_path, [pan])
    publish_flows_to(pan, topic)
    _apply(agg, topic)
    codec = event_codec()
    real = codec.decode_envelope(codec.split_signed(topic.records[0].value or b"")[0])
    key = SigningKey.load("PAN", pan.signing_key_path)
    env_bytes = codec.encode_envelope(Envelope(**{**real.__dict__, "revision": 99}))
    replay = MemoryTopic()
    replay.append(b"PAN", codec.encode_signed(env_bytes, key.sign(env_bytes)))
    stats = _apply(agg, replay)
    assert stats.rejected == {"replay-conflict": 1}
