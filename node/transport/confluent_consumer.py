"""What confluent-kafka's consumers share (``ConfluentConsumer``): the client, its
errors, and turning what ``consume`` gives into ``Message``s. The group consumer
is ``confluent_source.ConfluentSource``, the readers without a group are in
``confluent_replay``."""

from __future__ import annotations

import logging
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from node.errors import TransportError
from node.transport.base import Message
from node.transport.confluent import confluent_hint, load_confluent
from node.transport.credentials import Redacted, describe

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError
    from confluent_kafka import Message as RdMessage

log = logging.getLogger("node.transport.confluent")


#: How long one consume call blocks while ``open`` waits for an assignment.
ASSIGN_POLL_S = 0.2

#: Timeout of the metadata calls (committed offsets, watermarks) ``open`` makes.
METADATA_TIMEOUT_S = 30.0


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


class ConfluentConsumer:
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

    def open(self) -> ConfluentConsumer:
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
            who, hint = describe(self._security), confluent_hint(self._config)
            raise TransportError(f"cannot consume {self.topic} ({who}): {exc}{hint}") from exc
        return consumer

    def _failed(self, what: str, reason: object) -> TransportError:
        detail = f"{reason} (last client error: {self._last_error})" if self._last_error else reason
        return TransportError(f"{what} {self.topic} failed: {detail}{confluent_hint(self._config)}")

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
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    tp, timeout=METADATA_TIMEOUT_S, cached=False
                )
                return int(low), int(high)
            except self._module.KafkaException as exc:
                err = exc.args[0] if exc.args else None
                code = err.code() if isinstance(err, self._module.KafkaError) else None
                if code not in self._transient or time.monotonic() > deadline:
                    raise self._failed("cannot read the offsets of", exc) from exc
                time.sleep(ASSIGN_POLL_S)
