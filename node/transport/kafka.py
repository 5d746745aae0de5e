"""The only module that imports kafka-python.

Producers are idempotent with acks=all; nothing here connects in a
constructor's caller's back: clients are created by explicit ``open`` calls.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError

from node.errors import RecordTooLarge, TransportError
from node.transport.base import Ack, Message
from node.transport.credentials import describe

log = logging.getLogger("corredor.transport")

#: How long ``KafkaSink.close`` first waits for records still in flight.
CLOSE_TIMEOUT_S = 10.0

#: Producer settings that must hold for Corredor's delivery guarantees. Setting
#: a conflicting option silently disables idempotence in kafka-python, so the
#: caller's extras may not override these.
PRODUCER_GUARANTEES: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "max_in_flight_requests_per_connection": 5,
}


#: How long a consumer waits for its group to assign it partitions. Generous on
#: purpose: the wait ends the moment the assignment arrives, but a rebalance may
#: first wait out a departed member's session (10 s) and the rebalance timeout
#: (the members' max poll interval, 60 s), and a busy 2-core machine stretches
#: every step of it. Only a group that never assigns waits the whole bound.
ASSIGNMENT_WAIT_S = 600.0

#: How long a topic just created may take to show in the broker's metadata.
TOPIC_VISIBLE_WAIT_S = 120.0

#: How often a long wait says, at INFO, what it still waits for.
_WAIT_NOTE_S = 30.0


def _hint(settings: dict[str, Any]) -> str:
    # kafka-python reports refused credentials as a bootstrap timeout.
    if "sasl_plain_username" in settings:
        return " (is the broker up, and are the password and CA right?)"
    return ""


def producer_config(
    bootstrap: str, client_id: str, security: dict[str, Any] | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": client_id,
        "linger_ms": 5,
        "retries": 2**31 - 1,
        "delivery_timeout_ms": 120_000,
        "request_timeout_ms": 30_000,
        **(security or {}),
    }
    config.update(PRODUCER_GUARANTEES)
    return config


def _publish_error(topic: str, exc: KafkaError) -> TransportError:
    """The Corredor error for a failed send: a record that can never fit says so."""
    if isinstance(exc, MessageSizeTooLargeError):
        return RecordTooLarge(f"publish to {topic} failed: a record is too large: {exc}")
    return TransportError(f"publish to {topic} failed: {exc}")


class KafkaSink:
    """Sends record batches to one topic and waits for every acknowledgement."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_id: str = "corredor-node",
        security: dict[str, Any] | None = None,
        ack_timeout_s: float = 120.0,
        delivery_timeout_ms: int | None = None,
    ) -> None:
        self.topic = topic
        self._config = producer_config(bootstrap, client_id, security)
        if delivery_timeout_ms is not None:
            # A follow loop wants to hear of an outage soon and retry itself.
            self._config["delivery_timeout_ms"] = delivery_timeout_ms
            # kafka-python requires delivery > linger + request timeout.
            self._config["request_timeout_ms"] = min(30_000, delivery_timeout_ms // 2)
            self._config["max_block_ms"] = delivery_timeout_ms
        self._ack_timeout_s = ack_timeout_s
        self._producer: KafkaProducer | None = None

    def open(self) -> KafkaSink:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(**self._config)
            except KafkaError as exc:
                who, hint = describe(self._config), _hint(self._config)
                raise TransportError(f"cannot connect producer ({who}): {exc}{hint}") from exc
        return self

    @property
    def producer(self) -> KafkaProducer:
        return self.open()._producer

    def send_batch(self, records: Sequence[tuple[bytes, bytes]]) -> list[Ack]:
        return self.submit(records)()

    def submit(self, records: Sequence[tuple[bytes, bytes]]) -> Callable[[], list[Ack]]:
        return self._submit([(k, v, None) for k, v in records])

    def send_with_headers(
        self, records: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]
    ) -> list[Ack]:
        """Like ``send_batch``, with Kafka record headers (dead letters carry
        their reason and origin in headers, the original bytes as the value).
        A None value is a tombstone: compaction drops the key."""
        wait = self._submit(records)
        self._flush()
        return wait()

    def _flush(self) -> None:
        try:
            self.producer.flush(timeout=self._ack_timeout_s)
        except KafkaError as exc:
            raise TransportError(f"publish to {self.topic} failed: {exc}") from exc

    def _submit(
        self, records: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]]
    ) -> Callable[[], list[Ack]]:
        producer = self.producer
        try:
            futures = [producer.send(self.topic, key=k, value=v, headers=h) for k, v, h in records]
        except KafkaError as exc:
            raise _publish_error(self.topic, exc) from exc

        def wait() -> list[Ack]:
            # Each future resolves when its record batch is acknowledged (the
            # producer's linger sends the last partial batch): no flush, so
            # records handed over after these keep flowing meanwhile.
            try:
                acks = []
                for fut in futures:
                    meta = fut.get(timeout=self._ack_timeout_s)
                    acks.append(Ack(meta.topic, meta.partition, meta.offset))
            except KafkaError as exc:
                raise _publish_error(self.topic, exc) from exc
            return acks

        return wait

    def close(self) -> None:
        """Close the producer; never raises a Kafka client error.

        kafka-python's ``close`` flushes first and raises ``KafkaTimeoutError``
        when records are still unacknowledged (the broker is away). Nothing is
        lost by giving up on them: a record counts as sent only once its
        acknowledgement is recorded (the outbox marks rows on ack), so the next
        producer sends them again. Every record expires by the delivery
        timeout, so a second close bounded by it finishes; if even that fails,
        a (retriable) ``TransportError`` says so."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=CLOSE_TIMEOUT_S)
            return
        except KafkaError as exc:
            log.warning(
                "closing the producer on %s: %s; waiting for records to expire", self.topic, exc
            )
        expiry_s = self._config["delivery_timeout_ms"] / 1000 + 1
        try:
            producer.close(timeout=expiry_s)
        except KafkaError as exc:
            raise TransportError(
                f"producer on {self.topic} did not close within {expiry_s:.0f} s: {exc}"
            ) from exc


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
                    group, self.topic, waited,
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
            f"cannot reach Kafka at {bootstrap} ({describe(settings)}): {exc}{_hint(settings)}"
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


def publish_record(
    bootstrap: str,
    topic: str,
    key: bytes,
    value: bytes,
    *,
    security: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> Ack:
    """Produce one record and wait for its acknowledgement (control messages)."""
    sink = KafkaSink(
        bootstrap, topic, client_id="corredor-control", security=security, ack_timeout_s=timeout_s
    )
    try:
        return sink.send_batch([(key, value)])[0]
    finally:
        sink.close()


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
