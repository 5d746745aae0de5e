"""What the aggregator sends on to members, on its own picture topic.

Restricted events, still sealed, are relayed to their recipients; the events
every member may see go back out with their producers' signed bytes
unchanged, so each member verifies the picture itself
(``node.aggregator.picture_sync``). Rows are marked sent only on the
broker's acknowledgement, as in a member's outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from node.aggregator.checks import APPENDED_AT_HEADER
from node.config import Home
from node.home import picture_topic
from node.store.picture import PictureStore
from node.transport.kafka_admin import ensure_topic
from node.transport.kafka_producer import KafkaSink


def relay_restricted(
    home: Home, store: PictureStore, address: str, security: dict[str, Any] | None
) -> int:
    """Send restricted events, still sealed, to the picture topic members read.
    Rows are marked only on the broker's acknowledgement (an outbox, again)."""
    pending = store.pending_relay()
    if not pending:
        return 0
    sink = side_topic_sink(home, picture_topic(home), address, security, "relay")
    try:
        sink.send_batch([(k or b"", v) for _, k, v in pending])
    finally:
        sink.close()
    store.mark_relayed([seq for seq, _, _ in pending])
    return len(pending)


def publish_picture(
    home: Home, store: PictureStore, address: str, security: dict[str, Any] | None
) -> int:
    """Send the events every member may see, their producers' signed bytes
    unchanged, to the picture topic, keyed by subject (the topic is compacted:
    the newest revision of each subject stays). Embargoed events wait. Each
    member verifies the signatures itself (``node.aggregator.picture_sync``)."""
    pending = store.pending_picture(datetime.now(UTC))
    tombstones = store.pending_tombstones()
    if not pending and not tombstones:
        return 0
    sink = side_topic_sink(home, picture_topic(home), address, security, "picture")
    try:
        # With the shared topic's append time: members judge keys against it.
        sink.send_with_headers(
            [
                (
                    subject.encode("utf-8"),
                    value,
                    [] if at is None else [(APPENDED_AT_HEADER, str(at).encode("ascii"))],
                )
                for _, subject, value, at in pending
            ]
        )
        # Purged subjects: the key with no value, so compaction removes them.
        sink.send_with_headers([(s.encode("utf-8"), None, []) for s in tombstones])
    finally:
        sink.close()
    store.mark_picture_published([seq for seq, _, _, _ in pending])
    store.mark_tombstoned(tombstones)
    return len(pending)


def side_topic_sink(
    home: Home, topic: str, address: str, security: dict[str, Any] | None, role: str
) -> KafkaSink:
    """A producer on one of the aggregator's own single-partition topics."""
    ensure_topic(
        address, topic, partitions=1, replication=home.config.kafka.replication, security=security
    )
    return KafkaSink(address, topic, client_id=f"corredor-{role}", security=security)
