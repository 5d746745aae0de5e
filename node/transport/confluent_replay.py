"""Reading a topic on confluent-kafka without a consumer group: all of it
(``confluent_read_all``, a member's picture copy and inbox) or from its
beginning in batches (``ConfluentReplay``, ``aggregate --rebuild``)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from node.errors import TransportError
from node.transport.base import Message
from node.transport.confluent import consumer_config
from node.transport.confluent_consumer import METADATA_TIMEOUT_S, ConfluentConsumer


def confluent_read_all(
    bootstrap: str,
    topic: str,
    *,
    security: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> list[Message]:
    """Every record on ``topic`` from the start to its current end, without a
    consumer group: ``kafka_consumer.read_all`` on confluent-kafka. As there,
    ``timeout_s`` bounds a stall, not the read."""
    reader = ConfluentReplay(bootstrap, topic, client_id="corredor-reader", security=security)
    try:
        return reader.read_to_end(timeout_s)
    finally:
        reader.close()


class ConfluentReplay(ConfluentConsumer):
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
                meta = consumer.list_topics(self.topic, timeout=METADATA_TIMEOUT_S)
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

    def read_to_end(self, timeout_s: float) -> list[Message]:
        """Every record from each partition's first offset to its end when
        opened, none after. ``timeout_s`` bounds a stall: a long topic on a busy
        machine is read to its end as long as records keep coming."""
        self.open()
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while not self.caught_up():
            if time.monotonic() > deadline:
                raise TransportError(f"reading {self.topic} made no progress for {timeout_s:.0f} s")
            polled = self.poll_batch(500, 5_000)
            if polled:
                deadline = time.monotonic() + timeout_s
            out.extend(m for m in polled if m.offset < self._end[m.partition])
        return out

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
