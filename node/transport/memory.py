"""In-memory doubles of the transport, for unit tests of the stages."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from node.transport.base import Ack, Message


class MemoryTopic:
    """A single-partition topic in a list. It stamps each record with its own
    append time, as a broker with ``LogAppendTime`` does."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.records: list[Message] = []

    def append(self, key: bytes | None, value: bytes | None) -> Ack:
        msg = Message(self.name, 0, len(self.records), key, value, int(time.time() * 1000), True)
        self.records.append(msg)
        return Ack(self.name, 0, msg.offset)


class MemorySink:
    def __init__(self, topic: MemoryTopic) -> None:
        self.topic = topic

    def send_batch(self, records: Sequence[tuple[bytes, bytes]]) -> list[Ack]:
        return [self.topic.append(k, v) for k, v in records]

    def submit(self, records: Sequence[tuple[bytes, bytes]]) -> Callable[[], list[Ack]]:
        acks = self.send_batch(records)
        return lambda: acks

    def close(self) -> None:
        pass


class MemorySource:
    """Reads a MemoryTopic from a committed position, like one consumer group."""

    def __init__(self, topic: MemoryTopic, committed: int = 0) -> None:
        self.topic = topic
        self.committed = committed
        self._position = committed
        self._end = len(topic.records)

    def poll_batch(self, timeout_ms: int, max_records: int) -> list[Message]:
        batch = self.topic.records[self._position : self._position + max_records]
        self._position += len(batch)
        return batch

    def caught_up(self) -> bool:
        return self._position >= self._end

    def commit(self) -> None:
        self.committed = self._position

    def close(self) -> None:
        pass
