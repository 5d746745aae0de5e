"""Which Kafka library a home's consumers use (``kafka.client`` in its config).

``kafka-python`` (the default) or ``confluent`` (confluent-kafka, on
librdkafka). Both give the same ``Message`` records with the same group and
commit semantics, so the aggregator, its follow loop and a member's copy of
the picture never know which one reads for them.
"""

from __future__ import annotations

from typing import Any, Protocol

from node.transport.base import Client as Client  # where its users import it
from node.transport.base import EventSource, Message
from node.transport.confluent_replay import ConfluentReplay, confluent_read_all
from node.transport.confluent_source import ConfluentSource
from node.transport.kafka_consumer import KafkaReplay, KafkaSource, read_all


class GroupSource(EventSource, Protocol):
    """A consumer-group reader: ``EventSource`` plus its lag (for metrics)."""

    def lag(self) -> int:
        """Messages on the assigned partitions not yet returned."""
        ...


def group_source(
    client: Client,
    bootstrap: str,
    topic: str,
    group_id: str,
    *,
    security: dict[str, Any] | None = None,
    client_id: str = "corredor-aggregator",
) -> KafkaSource | ConfluentSource:
    """A reader of ``topic`` in ``group_id`` on the chosen library; it connects
    on ``open`` (or its first poll)."""
    if client == "confluent":
        return ConfluentSource(bootstrap, topic, group_id, client_id=client_id, security=security)
    return KafkaSource(bootstrap, topic, group_id, client_id=client_id, security=security)


def read_topic(
    client: Client,
    bootstrap: str,
    topic: str,
    *,
    security: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> list[Message]:
    """Every record on ``topic`` from its start to its current end, without a
    consumer group, on the chosen library."""
    if client == "confluent":
        return confluent_read_all(bootstrap, topic, security=security, timeout_s=timeout_s)
    return read_all(bootstrap, topic, security=security, timeout_s=timeout_s)


class ReplaySource(EventSource, Protocol):
    """A group-less reader from the beginning of a topic (``aggregate --rebuild``)."""

    def total(self) -> int:
        """Messages on the topic, first offset to end, when it was opened."""
        ...

    def positions(self) -> dict[int, int]:
        """Per partition, one past the last message returned."""
        ...


def replay_source(
    client: Client,
    bootstrap: str,
    topic: str,
    *,
    security: dict[str, Any] | None = None,
) -> KafkaReplay | ConfluentReplay:
    """A reader of ``topic`` from its beginning, in no group, on the chosen library."""
    if client == "confluent":
        return ConfluentReplay(bootstrap, topic, security=security)
    return KafkaReplay(bootstrap, topic, security=security)
