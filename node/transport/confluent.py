"""The optional confluent-kafka (librdkafka) client, behind ``EventSink`` and
``EventSource``.

``kafka.client: confluent`` in a home's config makes ``node.member.publish.open_sink``
return a :class:`ConfluentSink` instead of ``kafka.KafkaSink``. It keeps the
same delivery guarantees (idempotent, acks=all, at most five requests in
flight) under librdkafka's names, takes the same kafka-python style security
dict, and gives the same acknowledgements and errors.

It also makes the aggregator's consumer (``node.aggregator.run.open_source``) a
:class:`ConfluentSource` instead of ``kafka.KafkaSource``, with the same group
semantics: a partition starts at the committed offset (the beginning if none),
and offsets are committed only by ``commit``, only for what was returned.
:func:`confluent_read_all` and :class:`ConfluentReplay` read a topic without a
group (a member's picture copy and inbox, ``aggregate --rebuild``).
kafka-python stays the default, and is still used for the control topic, the
aggregator's side-topic producers and every admin client.

confluent-kafka is an optional extra (``pip install 'corredor[confluent]'``),
imported only when one of these clients is made.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from node.errors import ConfigError, TransportError
from node.transport.base import Ack, Message
from node.transport.credentials import Redacted, describe

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka import Message as RdMessage

log = logging.getLogger(__name__)

#: librdkafka's names for the settings Corredor's delivery guarantees rest on
#: (node.transport.kafka.PRODUCER_GUARANTEES); extras may not override them.
CONFLUENT_GUARANTEES: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "max.in.flight.requests.per.connection": 5,
}

INSTALL_HINT = "pip install 'corredor[confluent]'"

#: kafka-python security keyword -> librdkafka property.
_SECURITY_NAMES = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanisms",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
}

#: How long one poll for delivery reports blocks while a waiter waits.
_POLL_S = 0.1


def load_confluent() -> ModuleType:
    """The confluent_kafka module, or a ConfigError saying how to install it."""
    try:
        return importlib.import_module("confluent_kafka")
    except ImportError as exc:
        raise ConfigError(
            f"kafka.client is 'confluent' but confluent-kafka is not installed ({exc}): "
            f"{INSTALL_HINT}, or set kafka.client: kafka-python"
        ) from exc


def confluent_security(security: dict[str, Any] | None) -> dict[str, Any]:
    """librdkafka properties for a kafka-python style security dict
    (``node.transport.credentials.security_settings``). The password stays a
    ``Redacted`` here; it is revealed only when the producer is created."""
    out: dict[str, Any] = {}
    for key, value in (security or {}).items():
        if key == "ssl_check_hostname":
            out["ssl.endpoint.identification.algorithm"] = "https" if value else "none"
        elif key in _SECURITY_NAMES:
            out[_SECURITY_NAMES[key]] = value
        else:
            raise ConfigError(f"kafka security setting {key!r} has no confluent-kafka equivalent")
    return out


def confluent_config(
    bootstrap: str, client_id: str, security: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The producer's librdkafka configuration: node.transport.kafka.producer_config
    under librdkafka's names."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "linger.ms": 5,
        "retries": 2**31 - 1,
        "delivery.timeout.ms": 120_000,
        "request.timeout.ms": 30_000,
        **confluent_security(security),
    }
    config.update(CONFLUENT_GUARANTEES)
    return config


def _hint(config: dict[str, Any]) -> str:
    if "sasl.username" in config:
        return " (is the broker up, and are the password and CA right?)"
    return ""


class _Batch:
    """Delivery reports for one submitted batch, filled in by librdkafka's
    callbacks (served on the thread that polls the producer)."""

    __slots__ = ("acks", "error", "pending")

    def __init__(self, size: int) -> None:
        self.acks: list[Ack | None] = [None] * size
        self.pending = size
        self.error: str | None = None

    def report(self, index: int, err: KafkaError | None, msg: RdMessage) -> None:
        self.pending -= 1
        if err is not None:
            if self.error is None:
                self.error = err.str()
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None or offset < 0:
            if self.error is None:
                self.error = f"delivery report without an offset (partition {partition})"
            return
        self.acks[index] = Ack(topic, partition, offset)


class ConfluentSink:
    """Sends record batches to one topic and waits for every acknowledgement,
    on confluent-kafka. Same methods and semantics as ``kafka.KafkaSink``."""

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
        self._module = load_confluent()
        self.topic = topic
        self._security = dict(security or {})
        self._config = confluent_config(bootstrap, client_id, security)
        if delivery_timeout_ms is not None:
            # A follow loop wants to hear of an outage soon and retry itself.
            self._config["delivery.timeout.ms"] = delivery_timeout_ms
            self._config["request.timeout.ms"] = min(30_000, delivery_timeout_ms // 2)
        self._ack_timeout_s = ack_timeout_s
        # How long ``submit`` waits for room in a full local queue.
        self._block_s = self._config["delivery.timeout.ms"] / 1000
        self._producer: Producer | None = None
        # The latest client-level error librdkafka reported (broker down,
        # authentication refused): it explains a delivery that timed out.
        self._last_error: str | None = None
        self._fatal: str | None = None

    def _on_error(self, err: KafkaError) -> None:
        # librdkafka's client-level errors carry no configuration values.
        self._last_error = err.str()
        if err.fatal():
            self._fatal = err.str()
            log.error("confluent producer for %s: fatal error: %s", self.topic, err.str())
        else:
            log.debug("confluent producer for %s: %s", self.topic, err.str())

    def open(self) -> ConfluentSink:
        if self._producer is None:
            config = {
                k: v.reveal() if isinstance(v, Redacted) else v for k, v in self._config.items()
            }
            config["error_cb"] = self._on_error
            # librdkafka logs through Python logging (never the password), not stderr.
            config["logger"] = logging.getLogger(f"{__name__}.librdkafka")
            try:
                self._producer = self._module.Producer(config)
            except self._module.KafkaException as exc:
                who, hint = describe(self._security), _hint(self._config)
                raise TransportError(f"cannot connect producer ({who}): {exc}{hint}") from exc
        return self

    @property
    def producer(self) -> Producer:
        producer = self.open()._producer
        assert producer is not None
        return producer

    def send_batch(self, records: Sequence[tuple[bytes, bytes]]) -> list[Ack]:
        return self.submit(records)()

    def submit(self, records: Sequence[tuple[bytes, bytes]]) -> Callable[[], list[Ack]]:
        return self._submit([(k, v, None) for k, v in records])

    def send_with_headers(
        self, records: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]
    ) -> list[Ack]:
        """Like ``send_batch``, with Kafka record headers. A None value is a
        tombstone: compaction drops the key."""
        wait = self._submit(records)
        self.producer.flush(self._ack_timeout_s)
        return wait()

    def _failed(self, reason: str) -> TransportError:
        detail = f"{reason} (last client error: {self._last_error})" if self._last_error else reason
        return TransportError(f"publish to {self.topic} failed: {detail}{_hint(self._config)}")

    def _produce(
        self,
        producer: Producer,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        on_delivery: Callable[[KafkaError | None, RdMessage], None],
    ) -> None:
        deadline: float | None = None
        wire: list[tuple[str, str | bytes | None]] | None = (
            list(headers) if headers is not None else None
        )
        while True:
            try:
                producer.produce(
                    self.topic, value=value, key=key, headers=wire, on_delivery=on_delivery
                )
                return
            except BufferError:
                # The local queue is full: serve delivery reports to make room.
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._block_s
                elif now > deadline:
                    raise self._failed(
                        f"the producer queue stayed full for {self._block_s:g}s"
                    ) from None
                producer.poll(_POLL_S)
            except self._module.KafkaException as exc:
                raise self._failed(str(exc)) from exc

    def _submit(
        self, records: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]]
    ) -> Callable[[], list[Ack]]:
        producer = self.producer
        if self._fatal is not None:
            raise self._failed(self._fatal)
        batch = _Batch(len(records))
        for index, (key, value, headers) in enumerate(records):
            self._produce(producer, key, value, headers, functools.partial(batch.report, index))
        # Hand reports already due to their callbacks; never blocks.
        producer.poll(0)

        def wait() -> list[Ack]:
            # Poll, not flush: linger sends the last partial batch by itself,
            # so records handed over after these keep flowing meanwhile.
            deadline = time.monotonic() + self._ack_timeout_s
            while batch.pending and batch.error is None and self._fatal is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._failed(
                        f"{batch.pending} of {len(batch.acks)} records not acknowledged "
                        f"within {self._ack_timeout_s:g}s"
                    )
                producer.poll(min(remaining, _POLL_S))
            if batch.error is not None:
                raise self._failed(batch.error)
            if self._fatal is not None:
                raise self._failed(self._fatal)
            acks = [a for a in batch.acks if a is not None]
            if len(acks) != len(batch.acks):  # pragma: no cover - report() fills every slot
                raise self._failed("a delivery report is missing")
            return acks

        return wait

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        if producer.flush(10) > 0:
            # The broker is gone: drop what is still queued (its waiters, if
            # anyone still holds them, report the purge) rather than block.
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.poll(0)
        closer = getattr(producer, "close", None)  # confluent-kafka >= 2.11 only
        if callable(closer):
            closer()


# -- consumers ------------------------------------------------------------------

#: How long one consume call blocks while ``open`` waits for an assignment.
_ASSIGN_POLL_S = 0.2

#: Timeout of the metadata calls (committed offsets, watermarks) ``open`` makes.
_METADATA_TIMEOUT_S = 30.0


def consumer_config(
    bootstrap: str,
    group_id: str | None,
    client_id: str,
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A consumer's librdkafka configuration: ``kafka.KafkaSource``'s settings
    under librdkafka's names. Offsets are never committed or stored behind the
    caller's back: ``ConfluentSource.commit`` names each one."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "max.partition.fetch.bytes": 4 * 1024 * 1024,
        # As kafka.KafkaSource: a crashed member leaves the group after the
        # session timeout; one batch applies well within the poll interval.
        "session.timeout.ms": 10_000,
        "max.poll.interval.ms": 60_000,
        **confluent_security(security),
    }
    if group_id is not None:
        config["group.id"] = group_id
    else:
        # librdkafka wants a group id even for a consumer that only assigns;
        # nothing is ever committed under it.
        config["group.id"] = f"{client_id}-no-group"
    return config


def _header_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


def _to_message(module: ModuleType, msg: RdMessage) -> Message:
    """The transport's record for one librdkafka message (never an error one)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:  # pragma: no cover
        raise TransportError("the consumer returned a record without a position")
    kind, timestamp = msg.timestamp()
    raw = msg.headers() or []
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
    return Message(
        topic,
        partition,
        offset,
        msg.key(),
        msg.value(),
        timestamp if kind != module.TIMESTAMP_NOT_AVAILABLE else -1,
        log_append_time=kind == module.TIMESTAMP_LOG_APPEND_TIME,
        headers=tuple((str(k), _header_bytes(v)) for k, v in pairs),
    )


class _ConsumerBase:
    """What the group consumer and the group-less reader share: the client,
    its errors, and turning what ``consume`` gives into ``Message``s."""

    def __init__(self, topic: str, config: dict[str, Any], security: dict[str, Any]) -> None:
        self._module = load_confluent()
        self.topic = topic
        self._config = config
        self._security = security
        self._consumer: Consumer | None = None
        self._last_error: str | None = None
        self._auth_error: str | None = None
        self._fatal: str | None = None
        self._transient = {
            self._module.KafkaError._TRANSPORT,
            self._module.KafkaError._ALL_BROKERS_DOWN,
            self._module.KafkaError._PARTITION_EOF,
            self._module.KafkaError.UNKNOWN_TOPIC_OR_PART,
            self._module.KafkaError._UNKNOWN_PARTITION,
            self._module.KafkaError._TIMED_OUT,
            self._module.KafkaError.LEADER_NOT_AVAILABLE,
            self._module.KafkaError.NOT_LEADER_FOR_PARTITION,
            self._module.KafkaError.NOT_COORDINATOR,
            self._module.KafkaError.COORDINATOR_NOT_AVAILABLE,
            self._module.KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        }

    def open(self) -> _ConsumerBase:
        raise NotImplementedError

    @property
    def consumer(self) -> Consumer:
        """The client, opened on first use."""
        consumer = self.open()._consumer
        assert consumer is not None
        return consumer

    def _on_error(self, err: KafkaError) -> None:
        # librdkafka's client-level errors carry no configuration values.
        self._last_error = err.str()
        if err.code() == self._module.KafkaError._AUTHENTICATION:
            self._auth_error = err.str()
        if err.fatal():
            self._fatal = err.str()
            log.error("confluent consumer of %s: fatal error: %s", self.topic, err.str())
        else:
            log.debug("confluent consumer of %s: %s", self.topic, err.str())

    def _client_config(self) -> dict[str, Any]:
        config = {k: v.reveal() if isinstance(v, Redacted) else v for k, v in self._config.items()}
        config["error_cb"] = self._on_error
        # librdkafka logs through Python logging (never the password), not stderr.
        config["logger"] = logging.getLogger(f"{__name__}.librdkafka")
        return config

    def _make(self) -> Consumer:
        try:
            consumer: Consumer = self._module.Consumer(self._client_config())
        except self._module.KafkaException as exc:
            who, hint = describe(self._security), _hint(self._config)
            raise TransportError(f"cannot consume {self.topic} ({who}): {exc}{hint}") from exc
        return consumer

    def _failed(self, what: str, reason: object) -> TransportError:
        detail = f"{reason} (last client error: {self._last_error})" if self._last_error else reason
        return TransportError(f"{what} {self.topic} failed: {detail}{_hint(self._config)}")

    def _check(self, what: str) -> None:
        """Raise what librdkafka reported that no retry will mend."""
        if self._fatal is not None:
            raise self._failed(what, self._fatal)
        if self._auth_error is not None:
            raise self._failed(what, self._auth_error)

    def _consume(self, consumer: Consumer, max_records: int, timeout_s: float) -> list[Message]:
        try:
            polled = consumer.consume(num_messages=max(1, max_records), timeout=timeout_s)
        except self._module.KafkaException as exc:
            raise self._failed("poll of", exc) from exc
        self._check("poll of")
        out: list[Message] = []
        for msg in polled:
            err = msg.error()
            if err is None:
                out.append(_to_message(self._module, msg))
            elif err.code() in self._transient:
                # The client retries by itself (a broker away, a topic not yet
                # in its metadata); the caller polls again.
                log.debug("confluent consumer of %s: %s", self.topic, err.str())
            else:
                raise self._failed("poll of", err.str())
        return out

    def _watermarks(self, consumer: Consumer, tp: Any) -> tuple[int, int]:
        # Right after a topic is made (or a leader moves) the broker may not
        # lead the partition yet: ask again until the metadata timeout.
        deadline = time.monotonic() + _METADATA_TIMEOUT_S
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    tp, timeout=_METADATA_TIMEOUT_S, cached=False
                )
                return int(low), int(high)
            except self._module.KafkaException as exc:
                err = exc.args[0] if exc.args else None
                code = err.code() if isinstance(err, self._module.KafkaError) else None
                if code not in self._transient or time.monotonic() > deadline:
                    raise self._failed("cannot read the offsets of", exc) from exc
                time.sleep(_ASSIGN_POLL_S)


class ConfluentSource(_ConsumerBase):
    """Reads one topic as a member of a consumer group on confluent-kafka and
    commits explicitly. Same methods and semantics as ``kafka.KafkaSource``:
    a partition starts at its committed offset (the beginning if none),
    ``commit`` commits the position after every message returned so far, and
    nothing is ever committed otherwise."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        *,
        client_id: str = "corredor-aggregator",
        security: dict[str, Any] | None = None,
        assignment_timeout_s: float = 90.0,
    ) -> None:
        super().__init__(
            topic,
            consumer_config(bootstrap, group_id, client_id, security),
            dict(security or {}),
        )
        self._assignment_timeout_s = assignment_timeout_s
        self._assigned: set[int] = set()
        # Next offset to return, per partition: the committed (or first) offset
        # at assignment, then one past each message returned (not each one
        # merely fetched: what ``open`` holds back is not committed).
        self._position: dict[int, int] = {}
        self._end: dict[int, int] = {}
        # Messages ``open`` consumed while it waited for the assignment.
        self._buffer: list[Message] = []

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        self._assigned.update(tp.partition for tp in partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        gone = {tp.partition for tp in partitions}
        self._assigned -= gone
        for p in gone:
            self._position.pop(p, None)
            self._end.pop(p, None)
        self._buffer = [m for m in self._buffer if m.partition not in gone]

    def open(self) -> ConfluentSource:
        if self._consumer is not None:
            return self
        consumer = self._make()
        try:
            consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            deadline = time.monotonic() + self._assignment_timeout_s
            while not self._assigned:
                if time.monotonic() > deadline:
                    raise self._failed("no partitions assigned in time: consume", "timeout")
                # Messages that arrive meanwhile are kept, not re-read.
                self._buffer.extend(self._consume(consumer, 500, _ASSIGN_POLL_S))
            self._start_positions(consumer)
        except BaseException:
            with contextlib.suppress(Exception):
                consumer.close()
            self._assigned.clear()
            self._buffer.clear()
            raise
        self._consumer = consumer
        return self

    def _start_positions(self, consumer: Consumer) -> None:
        """Where each newly assigned partition starts, and its end now. After a
        rebalance librdkafka resumes a partition at its committed offset, so a
        partition assigned again starts there again."""
        fresh = sorted(p for p in self._assigned if p not in self._end)
        if not fresh:
            return
        tps = [self._module.TopicPartition(self.topic, p) for p in fresh]
        try:
            committed = consumer.committed(tps, timeout=_METADATA_TIMEOUT_S)
        except self._module.KafkaException as exc:
            raise self._failed("cannot read the committed offsets of", exc) from exc
        for tp in committed:
            low, high = self._watermarks(consumer, tp)
            # No committed offset, or one retention has passed: the beginning
            # (auto.offset.reset=earliest), as the client itself will do.
            start = tp.offset if tp.offset >= low else low
            self._position.setdefault(tp.partition, start)
            self._end[tp.partition] = high

    def poll_batch(self, timeout_ms: int, max_records: int) -> list[Message]:
        consumer = self.consumer
        if self._buffer:
            out, self._buffer = self._buffer[:max_records], self._buffer[max_records:]
        else:
            out = self._consume(consumer, max_records, timeout_ms / 1000)
            # A rebalance during the call may have assigned partitions again.
            self._start_positions(consumer)
        for msg in out:
            if msg.partition in self._assigned:
                self._position[msg.partition] = msg.offset + 1
        return [m for m in out if m.partition in self._assigned]

    def caught_up(self) -> bool:
        self._start_positions(self.consumer)
        return not self._buffer and all(
            self._position.get(p, 0) >= end for p, end in self._end.items()
        )

    def lag(self) -> int:
        """Messages on the assigned partitions not yet consumed: end offset - position."""
        consumer = self.consumer
        self._start_positions(consumer)
        total = 0
        for p in sorted(self._assigned):
            _, high = self._watermarks(consumer, self._module.TopicPartition(self.topic, p))
            total += max(0, high - self._position.get(p, high))
        return total

    def commit(self) -> None:
        consumer = self.consumer
        offsets = [
            self._module.TopicPartition(self.topic, p, o)
            for p, o in sorted(self._position.items())
            if p in self._assigned
        ]
        if not offsets:
            return
        try:
            result = consumer.commit(offsets=offsets, asynchronous=False)
        except self._module.KafkaException as exc:
            # _NO_OFFSET: everything named was committed already.
            if exc.args and exc.args[0].code() == self._module.KafkaError._NO_OFFSET:
                return
            raise self._failed("offset commit on", exc) from exc
        for tp in result or ():
            if tp.error is not None:
                raise self._failed("offset commit on", tp.error)

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._assigned.clear()
        self._position.clear()
        self._end.clear()
        self._buffer.clear()
        if consumer is not None:
            consumer.close()


def confluent_read_all(
    bootstrap: str,
    topic: str,
    *,
    security: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> list[Message]:
    """Every record on ``topic`` from the start to its current end, without a
    consumer group: ``kafka.read_all`` on confluent-kafka."""
    reader = _ConsumerBase(
        topic,
        consumer_config(bootstrap, None, "corredor-reader", security),
        dict(security or {}),
    )
    consumer = reader._make()
    module = reader._module
    out: list[Message] = []
    try:
        try:
            meta = consumer.list_topics(topic, timeout=_METADATA_TIMEOUT_S)
        except module.KafkaException as exc:
            raise reader._failed("cannot read", exc) from exc
        reader._check("read of")
        described = meta.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            return out
        ends: dict[int, int] = {}
        tps = []
        for p in sorted(described.partitions):
            tp = module.TopicPartition(topic, p)
            low, high = reader._watermarks(consumer, tp)
            if high > low:
                ends[p] = high
                tps.append(module.TopicPartition(topic, p, low))
        if not tps:
            return out
        consumer.assign(tps)
        position = {tp.partition: tp.offset for tp in tps}
        deadline = time.monotonic() + timeout_s
        while any(position[p] < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise TransportError(f"timed out reading {topic}")
            for msg in reader._consume(consumer, 5_000, 0.5):
                position[msg.partition] = msg.offset + 1
                if msg.offset < ends[msg.partition]:
                    out.append(msg)
        return out
    finally:
        consumer.close()


class ConfluentReplay(_ConsumerBase):
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
        super().__init__(
            topic, consumer_config(bootstrap, None, client_id, security), dict(security or {})
        )
        self._position: dict[int, int] = {}
        self._end: dict[int, int] = {}
        self._start: dict[int, int] = {}

    def open(self) -> ConfluentReplay:
        if self._consumer is not None:
            return self
        consumer = self._make()
        try:
            try:
                meta = consumer.list_topics(self.topic, timeout=_METADATA_TIMEOUT_S)
            except self._module.KafkaException as exc:
                raise self._failed("cannot read", exc) from exc
            self._check("read of")
            described = meta.topics.get(self.topic)
            partitions = sorted(described.partitions) if described is not None else []
            tps = []
            for p in partitions:
                low, high = self._watermarks(consumer, self._module.TopicPartition(self.topic, p))
                self._start[p], self._end[p], self._position[p] = low, high, low
                tps.append(self._module.TopicPartition(self.topic, p, low))
            if tps:
                consumer.assign(tps)
        except BaseException:
            with contextlib.suppress(Exception):
                consumer.close()
            raise
        self._consumer = consumer
        return self

    def poll_batch(self, timeout_ms: int, max_records: int) -> list[Message]:
        consumer = self.consumer
        if not self._end:
            return []
        out = self._consume(consumer, max_records, timeout_ms / 1000)
        for msg in out:
            self._position[msg.partition] = msg.offset + 1
        return out

    def caught_up(self) -> bool:
        self.open()
        return all(self._position[p] >= end for p, end in self._end.items())

    def total(self) -> int:
        """Messages between each partition's first offset and its end at open."""
        self.open()
        return sum(self._end[p] - self._start[p] for p in self._end)

    def positions(self) -> dict[int, int]:
        """The next offset of every partition: one past the last message returned."""
        self.open()
        return dict(self._position)

    def commit(self) -> None:
        """Nothing: a replay keeps no group position."""

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
