"""confluent-kafka's producer (``ConfluentSink``): the same delivery guarantees,
acknowledgements and errors as ``kafka_producer.KafkaSink``, under librdkafka's
names (configuration in ``node.transport.confluent``)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from node.errors import TransportError
from node.transport.base import Ack
from node.transport.confluent import confluent_config, confluent_hint, load_confluent
from node.transport.credentials import Redacted, describe

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka import Message as RdMessage

log = logging.getLogger("node.transport.confluent")


#: How long one poll for delivery reports blocks while a waiter waits.
_POLL_S = 0.1


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
    on confluent-kafka. Same methods and semantics as ``kafka_producer.KafkaSink``."""

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
                who, hint = describe(self._security), confluent_hint(self._config)
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
        hint = confluent_hint(self._config)
        return TransportError(f"publish to {self.topic} failed: {detail}{hint}")

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
