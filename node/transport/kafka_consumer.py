"""kafka-python's consumers: ``KafkaSource`` (a consumer group, offsets committed
by the caller), ``KafkaReplay`` (a topic read from its beginning without a
group), and ``read_latest`` / ``read_all`` for a topic's last record or all of it.
Nothing connects in a constructor: clients are created by explicit ``open`` calls."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from node.errors import TransportError
from node.transport.base import ASSIGNMENT_WAIT_S, Message

log = logging.getLogger("corredor.transport")


#: How long a topic just created may take to show in the broker's metadata.
TOPIC_VISIBLE_WAIT_S = 120.0

#: How often a long wait says, at INFO, what it still waits for.
_WAIT_NOTE_S = 30.0


#: kafka-python's ``ConsumerRecord.timestamp_type`` for a broker-assigned time.
LOG_APPEND_TIME = 1


def _message(record: Any) -> Message:
    return Message(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        record.timestamp,
        log_append_time=record.timestamp_type == LOG_APPEND_TIME,
        headers=tuple((str(k), bytes(v or b"")) for k, v in (record.headers or ())),
    )


class KafkaSource:
    """Reads one topic as a member of a consumer group; commits explicitly."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        *,
        client_id: str = "corredor-aggregator",
        security: dict[str, Any] | None = None,
        assignment_timeout_s: float = ASSIGNMENT_WAIT_S,
    ) -> None:
        self.topic = topic
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "group_id": group_id,
            "client_id": client_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_partition_fetch_bytes": 4 * 1024 * 1024,
            # A crashed member is dropped from the group after the session
            # timeout; the rebalance that lets its successor in waits up to the
            # rebalance timeout (max poll interval). One batch applies in well
            # under a minute, so a minute bounds how long a restart waits.
            "session_timeout_ms": 10_000,
            "max_poll_interval_ms": 60_000,
            **(security or {}),
        }
        self._assignment_timeout_s = assignment_timeout_s
        self._consumer: KafkaConsumer | None = None
        self._end: dict[TopicPartition, int] = {}

    def open(self) -> KafkaSource:
        if self._consumer is not None:
            return self
        try:
            consumer = KafkaConsumer(self.topic, **self._config)
        except KafkaError as exc:
            raise TransportError(f"cannot consume {self.topic}: {exc}") from exc
        try:
            self._await_assignment(consumer)
            # poll(update_offsets=False) fetched nothing we keep: rewind to committed.
            for tp in consumer.assignment():
                committed = consumer.committed(tp)
                if committed is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
            self._end = consumer.end_offsets(list(consumer.assignment()))
        except (KafkaError, TransportError) as exc:
            # A consumer left open would stay in the group and stall its next rebalance.
            with contextlib.suppress(Exception):
                consumer.close()
            if isinstance(exc, TransportError):
                raise
            raise TransportError(f"cannot consume {self.topic}: {exc}") from exc
        self._consumer = consumer
        return self

    def _await_assignment(self, consumer: KafkaConsumer) -> None:
        """Poll until the group assigns this member partitions: a condition,
        bounded only by ``assignment_timeout_s``. A topic that is not there at
        all fails early instead, once it has had time to show."""
        group = self._config["group_id"]
        started = time.monotonic()
        noted = started
        while not consumer.assignment():
            waited = time.monotonic() - started
            if waited > self._assignment_timeout_s:
                raise TransportError(
                    f"no partitions of {self.topic} assigned to group {group} after "
                    f"{waited:.0f} s; does another process of this group hold them?"
                )
            if time.monotonic() - noted > _WAIT_NOTE_S:
                noted = time.monotonic()
                if waited > TOPIC_VISIBLE_WAIT_S and self.topic not in consumer.topics():
                    raise TransportError(f"topic {self.topic} does not exist")
                log.info(
                    "group %s: still waiting for partitions of %s (%.0f s)",
                    group,
                    self.topic,
                    waited,
                )
            consumer.poll(timeout_ms=500, max_records=1, update_offsets=False)

    @property
    def consumer(self) -> KafkaConsumer:
        return self.open()._consumer

    def poll_batch(self, timeout_ms: int, max_records: int) -> list[Message]:
        try:
            polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise TransportError(f"poll of {self.topic} failed: {exc}") from exc
        out: list[Message] = []
        for records in polled.values():
            for r in records:
                out.append(_message(r))
        return out

    def caught_up(self) -> bool:
        consumer = self.consumer
        return all(consumer.position(tp) >= end for tp, end in self._end.items())

    def lag(self) -> int:
        """Messages on the assigned partitions not yet consumed: end offset - position."""
        consumer = self.consumer
        try:
            parts = list(consumer.assignment())
            ends = consumer.end_offsets(parts)
            return sum(max(0, ends[tp] - consumer.position(tp)) for tp in parts)
        except KafkaError as exc:
            raise TransportError(f"cannot read the end offsets of {self.topic}: {exc}") from exc

    def commit(self) -> None:
        try:
            self.consumer.commit()
        except KafkaError as exc:
            raise TransportError(f"offset commit failed: {exc}") from exc

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class KafkaReplay:
    """Reads one topic from its beginning without a consumer group (a rebuild):
    every partition from its first offset up to its end when opened. It
    commits nothing; ``positions`` says how far it got."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_id: str = "corredor-rebuild",
        security: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "group_id": None,
            "client_id": client_id,
            "enable_auto_commit": False,
            "max_partition_fetch_bytes": 4 * 1024 * 1024,
            **(security or {}),
        }
        self._consumer: KafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._start: dict[int, int] = {}
        self._end: dict[int, int] = {}

    def open(self) -> KafkaReplay:
        if self._consumer is not None:
            return self
        try:
            consumer = KafkaConsumer(**self._config)
        except KafkaError as exc:
            raise TransportError(f"cannot consume {self.topic}: {exc}") from exc
        try:
            parts = sorted(consumer.partitions_for_topic(self.topic) or ())
            self._tps = [TopicPartition(self.topic, p) for p in parts]
            if self._tps:
                consumer.assign(self._tps)
                consumer.seek_to_beginning(*self._tps)
                starts = consumer.beginning_offsets(self._tps)
                ends = consumer.end_offsets(self._tps)
                self._start = {tp.partition: starts[tp] for tp in self._tps}
                self._end = {tp.partition: ends[tp] for tp in self._tps}
        except KafkaError as exc:
            consumer.close()
            raise TransportError(f"cannot consume {self.topic}: {exc}") from exc
        self._consumer = consumer
        return self

    @property
    def consumer(self) -> KafkaConsumer:
        return self.open()._consumer

    def poll_batch(self, timeout_ms: int, max_records: int) -> list[Message]:
        consumer = self.consumer
        if not self._tps:
            return []
        try:
            polled = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise TransportError(f"poll of {self.topic} failed: {exc}") from exc
        return [_message(r) for records in polled.values() for r in records]

    def caught_up(self) -> bool:
        positions = self.positions()
        return all(positions[p] >= end for p, end in self._end.items())

    def total(self) -> int:
        """Messages between each partition's first offset and its end at open."""
        self.open()
        return sum(self._end[p] - self._start[p] for p in self._end)

    def positions(self) -> dict[int, int]:
        """The next offset of every partition: one past the last message returned."""
        consumer = self.consumer
        try:
            return {tp.partition: consumer.position(tp) for tp in self._tps}
        except KafkaError as exc:
            raise TransportError(f"cannot read the position on {self.topic}: {exc}") from exc

    def commit(self) -> None:
        """Nothing: a replay keeps no group position."""

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def read_latest(
    bootstrap: str,
    topic: str,
    key: bytes,
    *,
    security: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> bytes | None:
    """The newest value for ``key`` on a (compacted) topic."""
    latest: bytes | None = None
    for msg in read_all(bootstrap, topic, security=security, timeout_s=timeout_s):
        if msg.key == key:
            latest = msg.value
    return latest


def read_all(
    bootstrap: str,
    topic: str,
    *,
    security: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> list[Message]:
    """Every record on ``topic`` from the start to its current end, without a
    consumer group (a reader that keeps no position, e.g. a member's inbox).
    ``timeout_s`` bounds a stall, not the read: a long topic on a busy machine
    is read to its end as long as records keep coming."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=None,
            enable_auto_commit=False,
            client_id="corredor-reader",
            **(security or {}),
        )
    except KafkaError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    out: list[Message] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return out
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TransportError(f"reading {topic} made no progress for {timeout_s:.0f} s")
            for records in consumer.poll(timeout_ms=500).values():
                if records:
                    deadline = time.monotonic() + timeout_s
                out.extend(_message(r) for r in records)
        return out
    except KafkaError as exc:
        raise TransportError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()
