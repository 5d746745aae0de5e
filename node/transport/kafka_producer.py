"""kafka-python's producer: ``KafkaSink``, idempotent with acks=all, and
``publish_record`` for one record. Nothing connects in a constructor: the
producer is created by an explicit ``open``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError

from node.errors import RecordTooLarge, TransportError
from node.transport.base import Ack
from node.transport.credentials import connection_hint, describe

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
                who, hint = describe(self._config), connection_hint(self._config)
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
