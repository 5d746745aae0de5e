"""Oversized messages on a shared topic whose size limit was raised do not jam
the dead-letter step: they go to the dead-letter topic by reference.

The dead-letter topic and its producer keep Kafka's default 1 MiB limit, so a
5 MB message cannot be copied there. It used to fail the copy and every later
`aggregate --once` with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from node.aggregator.apply import DEAD_LETTER_REASONS
from node.aggregator.dead_letters import dead_letter_topic
from node.aggregator.run import aggregate_once
from node.member.publish import publish
from node.operator.status import home_status
from node.store.picture import PictureStore
from node.transport.kafka_consumer import read_all
from node.transport.provision import SHARED_TOPIC_CONFIGS
from tests.factories import aggregator_for, member_with_data

BIG = 5 * 1024 * 1024
LIMIT = 8 * 1024 * 1024


def _raised_limit_topic(bootstrap: str, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        configs = {**SHARED_TOPIC_CONFIGS, "max.message.bytes": str(LIMIT)}
        admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
        admin.wait_for_topics([name], timeout_ms=30_000)
    finally:
        admin.close()


def test_messages_too_large_to_copy_go_to_the_dead_letter_topic_by_reference(
    kafka_bootstrap: str, group_id: str, tmp_path: Path
) -> None:
    topic = f"large-{group_id}"
    _raised_limit_topic(kafka_bootstrap, topic)
    pan, _, _ = member_with_data(tmp_path, "PAN", 300, seed=5, weeks=2, topic=topic)
    pan.config.kafka.bootstrap = kafka_bootstrap
    pan.save()
    agg = aggregator_for(tmp_path, [pan], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()
    published = publish(pan).drain.acknowledged
    assert published > 0

    big_garbage = os.urandom(BIG)
    big_framed = b"\xc3\x01" + b"\x00" * 8 + os.urandom(BIG)  # looks like single-object Avro
    small = os.urandom(64)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=LIMIT)
    try:
        offsets = {}
        for value in (big_garbage, small, big_framed):
            meta = producer.send(topic, key=b"PAN", value=value).get(timeout=60)
            offsets[hashlib.sha256(value).hexdigest()] = (meta.partition, meta.offset)
    finally:
        producer.close()

    stats = aggregate_once(agg)  # raised a TransportError (message too large)
    assert stats.rejected == {"undecodable": 3}
    assert stats.applied == published  # the good events around them went in

    dead = read_all(kafka_bootstrap, dead_letter_topic(agg))
    copies = [m for m in dead if not any(k == "corredor.by-reference" for k, _ in m.headers)]
    refs = [m for m in dead if m not in copies]
    assert [m.value for m in copies] == [small]
    assert len(refs) == 2
    for m in refs:
        where = json.loads(m.value or b"")
        headers = dict(m.headers)
        assert where["size"] == BIG + (10 if where["sha256"] == _sha(big_framed) else 0)
        assert where["sha256"] in {_sha(big_garbage), _sha(big_framed)}
        assert (where["topic"], where["partition"], where["offset"]) == (
            topic,
            *offsets[where["sha256"]],
        )
        assert headers["corredor.sha256"].decode() == where["sha256"]
        assert headers["corredor.reason"] == b"undecodable"
        assert len(m.value or b"") < 1000
    with PictureStore(agg.store_path) as store:
        left = store.pending_dead_letters(DEAD_LETTER_REASONS)
        quarantined = {_sha(r["raw"]) for r in _raw_rejected(store)}
    assert left == []  # nothing left pending
    # The originals stay in quarantine, byte for byte.
    assert quarantined == {_sha(big_garbage), _sha(big_framed), _sha(small)}

    # The next run is not jammed and sends nothing twice.
    again = aggregate_once(agg)
    assert again.messages == 0
    assert len(read_all(kafka_bootstrap, dead_letter_topic(agg))) == 3
    status = home_status(agg)
    assert status["dead_lettered"] == 3 and status["dead_lettered_by_reference"] == 2


def _raw_rejected(store: PictureStore) -> list[dict[str, bytes]]:
    conn = sqlite3.connect(store.path)
    try:
        return [{"raw": bytes(raw)} for (raw,) in conn.execute("SELECT raw FROM rejected_message")]
    finally:
        conn.close()


def _sha(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()
