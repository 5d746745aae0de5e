"""kafka-python's admin side: a consumer group's committed offsets and its
active members, and creating a topic (``ensure_topic``)."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from node.errors import TransportError
from node.transport.credentials import connection_hint, describe


def commit_group_offsets(
    bootstrap: str,
    topic: str,
    group_id: str,
    offsets: dict[int, int],
    *,
    security: dict[str, Any] | None = None,
) -> None:
    """Set ``group_id``'s committed offsets on ``topic`` (partition -> next
    offset) from outside the group; the group must have no active member."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=group_id,
            enable_auto_commit=False,
            client_id="corredor-rebuild",
            **(security or {}),
        )
    except KafkaError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        tps = {TopicPartition(topic, p): o for p, o in offsets.items()}
        consumer.assign(list(tps))
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in tps.items()})
    except KafkaError as exc:
        raise TransportError(f"offset commit for group {group_id} failed: {exc}") from exc
    finally:
        consumer.close()


def active_group_members(
    bootstrap: str,
    group_id: str,
    *,
    security: dict[str, Any] | None = None,
    coordinator_wait_s: float = 60.0,
) -> int:
    """How many consumers are members of ``group_id`` right now."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), **(security or {}))
    except KafkaError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    # A broker on which no group has ever committed has no group coordinator
    # yet (its offsets topic is created on first use): that answer is
    # retriable, and comes within seconds.
    deadline = time.monotonic() + coordinator_wait_s
    try:
        while True:
            try:
                described = admin.describe_groups([group_id]).get(group_id) or {}
                return len(described.get("members") or ())
            except KafkaError as exc:
                if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                    raise TransportError(
                        f"cannot describe consumer group {group_id}: {exc}"
                    ) from exc
                time.sleep(0.5)
    finally:
        admin.close()


def ensure_topic(
    bootstrap: str,
    topic: str,
    *,
    partitions: int = 3,
    replication: int = 1,
    configs: dict[str, str] | None = None,
    security: dict[str, Any] | None = None,
) -> bool:
    """Create ``topic`` if it does not exist. Returns True if it was created."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), **(security or {}))
    except KafkaError as exc:
        settings = security or {}
        raise TransportError(
            f"cannot reach Kafka at {bootstrap} ({describe(settings)}): "
            f"{exc}{connection_hint(settings)}"
        ) from exc
    try:
        if topic in admin.list_topics():
            return False
        admin.create_topics([NewTopic(topic, partitions, replication, topic_configs=configs or {})])
        return True
    except TopicAlreadyExistsError:
        return False
    except KafkaError as exc:
        raise TransportError(f"cannot create topic {topic}: {exc}") from exc
    finally:
        admin.close()
