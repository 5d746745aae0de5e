"""Probes for ``corredor doctor``: can this node reach, log in to and read Kafka?

Each probe opens what it needs, asks one question and closes. Failures are
``TransportError`` with a message naming the address and the kind of failure,
never a credential.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from node.errors import TransportError


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise TransportError(f"not a HOST:PORT bootstrap address: {item.strip()!r}")
        out.append((host.strip("[]"), int(port)))
    return out


def reachable(bootstrap: str, timeout_s: float = 3.0) -> str:
    """The first bootstrap address that accepts a TCP connection; raises if none."""
    reasons = []
    for host, port in _addresses(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return f"{host}:{port}"
        except OSError as exc:
            reasons.append(f"{host}:{port}: {exc.strerror or type(exc).__name__}")
    raise TransportError("no broker answers: " + "; ".join(reasons))


def live_brokers(config: dict[str, Any]) -> set[int]:
    """The ids of the brokers the cluster reports and has not fenced, as seen by
    a client with ``config`` (kafka-python settings, bootstrap included); none
    when no broker answers. The local cluster polls this until all are up."""
    try:
        admin = KafkaAdminClient(**config)
    except (KafkaError, OSError):
        return set()
    try:
        metadata = admin.describe_cluster()
        # kafka-python asks DescribeCluster to include fenced brokers: skip them.
        brokers = metadata["brokers"]
        return {int(b["broker_id"]) for b in brokers if not b.get("is_fenced", False)}
    except (KafkaError, OSError):
        return set()
    finally:
        admin.close()


def _client_config(
    bootstrap: str, security: dict[str, Any] | None, timeout_ms: int
) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": "corredor-doctor",
        "request_timeout_ms": timeout_ms,
        **(security or {}),
    }


def visible_topics(
    bootstrap: str, security: dict[str, Any] | None, *, timeout_ms: int = 10_000
) -> set[str]:
    """Topics this principal may see: proof that TLS and SASL accepted it."""
    try:
        admin = KafkaAdminClient(**_client_config(bootstrap, security, timeout_ms))
    except KafkaError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc
    try:
        return set(admin.list_topics())
    except KafkaError as exc:
        raise TransportError(f"listing topics failed: {type(exc).__name__}: {exc}") from exc
    finally:
        admin.close()


@dataclass(frozen=True)
class GroupLag:
    """How far a consumer group is behind a topic, by committed offsets."""

    lag: int
    end: int
    committed: int
    partitions: int
    uncommitted_partitions: int  # partitions the group never committed (lag counts all of them)


def group_lag(
    bootstrap: str,
    topic: str,
    group_id: str,
    security: dict[str, Any] | None,
    *,
    timeout_ms: int = 10_000,
) -> GroupLag:
    """End offsets of ``topic`` against ``group_id``'s committed offsets."""
    config = _client_config(bootstrap, security, timeout_ms)
    try:
        admin = KafkaAdminClient(**config)
        try:
            committed = {
                tp: meta.offset
                for tp, meta in admin.list_group_offsets(group_id).get(group_id, {}).items()
                if tp.topic == topic
            }
        finally:
            admin.close()
        consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **config)
        try:
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                raise TransportError(f"topic {topic} does not exist")
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            ends = consumer.end_offsets(tps)
        finally:
            consumer.close()
    except KafkaError as exc:
        raise TransportError(
            f"cannot read offsets of {topic}: {type(exc).__name__}: {exc}"
        ) from exc
    lag = sum(max(0, ends[tp] - max(0, committed.get(tp, 0))) for tp in tps)
    return GroupLag(
        lag=lag,
        end=sum(ends.values()),
        committed=sum(max(0, committed.get(tp, 0)) for tp in tps),
        partitions=len(tps),
        uncommitted_partitions=sum(1 for tp in tps if committed.get(tp, -1) < 0),
    )


@dataclass(frozen=True)
class TopicRetention:
    """What decides how long a topic keeps its messages, read from the broker."""

    configs: dict[str, str]  # effective settings, broker defaults included
    log_start: int  # first offsets still held, summed over partitions (0: nothing deleted)


def topic_retention(
    bootstrap: str,
    topic: str,
    security: dict[str, Any] | None,
    *,
    timeout_ms: int = 10_000,
) -> TopicRetention:
    """The topic's effective configuration (needs DESCRIBE_CONFIGS on it) and
    how much of its beginning is already gone."""
    config = _client_config(bootstrap, security, timeout_ms)
    try:
        admin = KafkaAdminClient(**config)
        try:
            described = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
            )
        finally:
            admin.close()
        entries = described.get("topic", {}).get(topic, {})
        if not entries:
            raise TransportError(
                f"this principal may not read the configuration of {topic} (DESCRIBE_CONFIGS)"
            )
        settings = {
            name: str(entry["value"]) for name, entry in entries.items() if entry.get("value")
        }
        consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **config)
        try:
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                raise TransportError(f"topic {topic} does not exist")
            starts = consumer.beginning_offsets([TopicPartition(topic, p) for p in parts])
        finally:
            consumer.close()
    except KafkaError as exc:
        raise TransportError(
            f"cannot read the configuration of {topic}: {type(exc).__name__}: {exc}"
        ) from exc
    return TopicRetention(settings, sum(starts.values()))
