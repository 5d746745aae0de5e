"""The regional floor in every run mode, and time judged by the broker's clock.

Each event here is signed with the member's real key, so that only the check
under test can set it aside. They go onto a real broker with a plain producer,
as a member holding a valid key (or its stolen key) could send them.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from node.aggregator.picture_sync import picture_path, sync_picture
from node.aggregator.rebuild import rebuild_picture
from node.aggregator.run import aggregate_follow, aggregate_once
from node.aggregator.stats import ApplyStats
from node.config import Home
from node.federation import drafts, trust
from node.federation import manifest as fed
from node.home import ensure_shared_topic, event_codec, regional_floor
from node.loops import wait_until
from node.member.member_home import home_policy, init_member
from node.model.events import Envelope, PolicyRef
from node.model.manifest import Topics
from node.store.picture import PictureStore
from node.transport.kafka_admin import ensure_topic
from node.transport.provision import SHARED_TOPIC_CONFIGS, TopicSpec, provision
from tests.factories import aggregator_for

NOW = datetime.now(UTC)


def _homes(tmp_path: Path, bootstrap: str, topic: str, group_id: str) -> tuple[Home, Home]:
    pan = init_member(tmp_path / "pan", "PAN", bootstrap=bootstrap, topic=topic)
    agg = aggregator_for(tmp_path, [pan], topic=topic)
    agg.config.kafka.bootstrap = bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()
    return pan, agg


def _signed(
    home: Home,
    *,
    count: int = 5,
    audiences: tuple[str, ...] = ("TS", "members"),
    purposes: tuple[str, ...] = ("statistics",),
    produced_at: datetime = NOW,
    retain_days: int = 365,
    nationality: str = "CUB",
) -> bytes:
    """A FlowStatistic as the member's node would sign it, with the envelope
    fields under test set by hand."""
    codec = event_codec()
    policy = home_policy(home)
    key = trust.load_signing_key(home)
    subject = f"FlowStatistic|PAN|2024-W02|nationality={nationality}"
    body: dict[str, Any] = {
        "reporting_country": "PAN",
        "period": "2024-W02",
        "period_type": "ISO_WEEK",
        "nationality": nationality,
        "count": count,
    }
    envelope = Envelope(
        event_id=f"test-{nationality}-{count}-{produced_at.timestamp():.0f}-{'.'.join(audiences)}",
        producer="PAN",
        kind="FlowStatistic",
        subject=subject,
        revision=1,
        produced_at=produced_at,
        policy=PolicyRef(policy.policy_id, policy.version, policy.sha256),
        audiences=audiences,
        purposes=purposes,
        key_id=key.key_id,
        retain_until=produced_at.date() + timedelta(days=retain_days),
        body=codec.encode_body("FlowStatistic", body),
    )
    env_bytes = codec.encode_envelope(envelope)
    return codec.encode_signed(env_bytes, key.sign(env_bytes))


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for value in values:
            producer.send(topic, key=b"PAN", value=value)
        producer.flush()
    finally:
        producer.close()


def _below_floor(pan: Home) -> list[bytes]:
    """Three events the floor refuses, and one it lets in (the control)."""
    return [
        _signed(pan, audiences=("TS", "UNODC"), nationality="VEN"),  # audience not allowed
        _signed(pan, count=1, nationality="HTI"),  # under the minimum cell size
        _signed(pan, purposes=("surveillance",), nationality="CHN"),  # purpose not listed
        _signed(pan, nationality="CUB"),  # within the floor
    ]


def _rejections(path: Path) -> dict[str, int]:
    with PictureStore(path) as store:
        return store.rejected_by_reason()


def _cells(path: Path) -> list[str]:
    with PictureStore(path) as store:
        return [c["nationality"] for c in store.flow_cells()]


@pytest.mark.parametrize("mode", ["once", "follow", "rebuild", "picture-copy"])
def test_every_run_mode_quarantines_events_below_the_floor(
    mode: str, kafka_bootstrap: str, topic: str, group_id: str, tmp_path: Path
) -> None:
    pan, agg = _homes(tmp_path, kafka_bootstrap, topic, group_id)
    events = _below_floor(pan)
    if mode == "picture-copy":
        # A member reads the picture topic: a Secretariat (or whoever can write
        # there) putting these on it must not get them into the member's copy.
        draft = drafts.load_draft(agg)
        picture_topic = f"{topic}.picture"
        drafts.save_draft(agg, draft.model_copy(update={"topics": Topics(picture=picture_topic)}))
        trust.accept_manifest(pan, drafts.sign_draft(agg))
        ensure_topic(kafka_bootstrap, picture_topic, partitions=1)
        _produce(kafka_bootstrap, picture_topic, events)
        stats = sync_picture(pan)
        where = picture_path(pan)
        assert stats.messages == len(events)
    elif mode == "once":
        _produce(kafka_bootstrap, topic, events)
        aggregate_once(agg)
        where = agg.store_path
    elif mode == "rebuild":
        _produce(kafka_bootstrap, topic, events)
        rebuild_picture(agg)
        where = agg.store_path
    else:
        _produce(kafka_bootstrap, topic, events)
        stop = threading.Event()
        total = ApplyStats()
        thread = threading.Thread(
            target=lambda: total.add(aggregate_follow(agg, stop)), daemon=True
        )
        thread.start()
        try:
            assert wait_until(
                lambda: (
                    sum(_rejections(agg.store_path).values()) + len(_cells(agg.store_path))
                    >= len(events)
                ),
                120,
            )
        finally:
            stop.set()
            thread.join(60)
        assert not thread.is_alive()
        where = agg.store_path
    assert _rejections(where) == {"below-regional-floor": 3}
    assert _cells(where) == ["CUB"]  # the control went in


# -- the broker's clock ---------------------------------------------------------------------


def _timestamp_type(bootstrap: str, topic: str) -> str:
    """The topic's message.timestamp.type as the broker reports it (unset: CreateTime)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    for by_name in result.values():
        entry = by_name.get(topic, {}).get("message.timestamp.type")
        if entry is not None:
            return str(entry["value"] if isinstance(entry, dict) else entry)
    return "CreateTime"


def test_the_shared_topic_is_created_with_the_brokers_append_time(
    kafka_bootstrap: str, group_id: str, tmp_path: Path
) -> None:
    name = f"shared-{group_id}"
    _, agg = _homes(tmp_path, kafka_bootstrap, name, group_id)
    ensure_shared_topic(agg, kafka_bootstrap, None)
    assert _timestamp_type(kafka_bootstrap, name) == "LogAppendTime"


def test_a_key_past_its_validity_with_a_backdated_produced_at_is_quarantined(
    kafka_bootstrap: str, topic: str, group_id: str, tmp_path: Path
) -> None:
    pan, agg = _homes(tmp_path, kafka_bootstrap, topic, group_id)
    key_id = trust.load_signing_key(pan).key_id
    ended = NOW - timedelta(days=3)
    drafts.save_draft(agg, fed.expire(drafts.load_draft(agg), "PAN", key_id, ended))
    drafts.sign_draft(agg)
    backdated = _signed(pan, produced_at=ended - timedelta(days=1), nationality="VEN")
    _produce(kafka_bootstrap, topic, [backdated])
    stats = aggregate_once(agg)
    assert stats.rejected == {"expired-key": 1}
    assert _cells(agg.store_path) == []


def test_produced_at_thirty_years_ahead_is_quarantined(
    kafka_bootstrap: str, topic: str, group_id: str, tmp_path: Path
) -> None:
    pan, agg = _homes(tmp_path, kafka_bootstrap, topic, group_id)
    ahead = NOW.replace(year=NOW.year + 30)
    # Within the floor's retention counted from its own produced_at, the old check.
    future = _signed(pan, produced_at=ahead, retain_days=3000, nationality="VEN")
    slightly = _signed(pan, produced_at=NOW + timedelta(seconds=30), nationality="CUB")
    _produce(kafka_bootstrap, topic, [future, slightly])
    stats = aggregate_once(agg)
    assert stats.rejected == {"clock-skew": 1} and stats.applied == 1
    with PictureStore(agg.store_path) as store:
        detail = store.rejected()[0]["detail"]
    assert "after the broker's append time" in detail


def test_retention_is_counted_from_the_brokers_append_date(
    kafka_bootstrap: str, topic: str, group_id: str, tmp_path: Path
) -> None:
    pan, agg = _homes(tmp_path, kafka_bootstrap, topic, group_id)
    floor_days = regional_floor().max_retention_days
    # Backdated 20 days (an outbox could hold it that long): the days left are
    # counted from when the broker got it, whatever produced_at says.
    back = NOW - timedelta(days=20)
    over = _signed(pan, produced_at=back, retain_days=floor_days + 25, nationality="VEN")
    within = _signed(pan, produced_at=back, retain_days=floor_days + 15, nationality="CUB")
    _produce(kafka_bootstrap, topic, [over, within])
    stats = aggregate_once(agg)
    assert stats.rejected == {"below-regional-floor": 1} and stats.applied == 1
    assert _cells(agg.store_path) == ["CUB"]


def test_a_topic_stamped_with_the_producers_time_is_not_trusted(
    kafka_bootstrap: str, group_id: str, tmp_path: Path
) -> None:
    name = f"createtime-{group_id}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        configs = {"message.timestamp.type": "CreateTime"}
        admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
        admin.wait_for_topics([name], timeout_ms=30_000)
    finally:
        admin.close()
    assert _timestamp_type(kafka_bootstrap, name) == "CreateTime"  # the helper can tell
    pan, agg = _homes(tmp_path, kafka_bootstrap, name, group_id)
    _produce(kafka_bootstrap, name, [_signed(pan)])
    stats = aggregate_once(agg)
    assert stats.rejected == {"untrusted-time": 1}
    with PictureStore(agg.store_path) as store:
        (row,) = store.rejected()
    assert row["producer"] == "PAN" and "LogAppendTime" in row["detail"]


def test_the_floor_states_its_clock_skew() -> None:
    floor = regional_floor()
    assert floor.max_clock_skew_seconds == 300 and floor.max_publish_delay_days == 30
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert floor.time_problem(at + timedelta(seconds=300), at) is None
    assert floor.time_problem(at + timedelta(seconds=301), at) is not None
    assert floor.time_problem(at - timedelta(days=30), at) is None
    assert floor.time_problem(at - timedelta(days=31), at) is not None


def test_provisioning_sets_the_brokers_append_time_on_an_existing_shared_topic(
    kafka_bootstrap: str, group_id: str
) -> None:
    """`deploy init-kafka` runs on every start of the stack: a shared topic made
    before this setting existed gets it too."""
    name = f"provisioned-{group_id}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, 1, topic_configs={})])
        admin.wait_for_topics([name], timeout_ms=30_000)
    finally:
        admin.close()
    assert _timestamp_type(kafka_bootstrap, name) == "CreateTime"
    spec = TopicSpec(name, 1, 1, dict(SHARED_TOPIC_CONFIGS))
    result = provision(
        {"bootstrap_servers": kafka_bootstrap.split(",")}, users={}, topics=[spec], acls=[]
    )
    assert result.topics_created == []
    assert _timestamp_type(kafka_bootstrap, name) == "LogAppendTime"
