"""confluent-kafka's group consumer (``ConfluentSource``): the same group semantics
as ``kafka_consumer.KafkaSource``; a partition starts at the committed offset
(the beginning if none), and offsets are committed only by ``commit``, only for
what was returned."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from node.transport.base import ASSIGNMENT_WAIT_S, Message
from node.transport.confluent import consumer_config
from node.transport.confluent_consumer import ASSIGN_POLL_S, METADATA_TIMEOUT_S, ConfluentConsumer

if TYPE_CHECKING:
    from confluent_kafka import Consumer


class ConfluentSource(ConfluentConsumer):
    """Reads one topic as a member of a consumer group on confluent-kafka and
    commits explicitly. Same methods and semantics as ``kafka_consumer.KafkaSource``:
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
        assignment_timeout_s: float = ASSIGNMENT_WAIT_S,
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
                self._buffer.extend(self._consume(consumer, 500, ASSIGN_POLL_S))
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
            committed = consumer.committed(tps, timeout=METADATA_TIMEOUT_S)
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
