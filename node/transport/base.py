"""The transport interface: where events go, where they come from.

Pipelines talk to these small interfaces; ``kafka`` implements them on a real
broker and ``memory`` in-process for unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

#: The Kafka libraries a home can produce and consume with (``kafka.client``).
Client = Literal["kafka-python", "confluent"]

#: How long a group consumer, on either client, waits for its group to assign
#: it partitions. Generous on purpose: the wait ends the moment the assignment
#: arrives, but a rebalance may first wait out a departed member's session
#: (10 s) and the rebalance timeout (the members' max poll interval, 60 s), and
#: a busy 2-core machine stretches every step of it. Only a group that never
#: assigns waits the whole bound.
ASSIGNMENT_WAIT_S = 600.0


@dataclass(frozen=True)
class Ack:
    """The broker's acknowledgement of one record."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Message:
    """One record read from a topic.

    ``timestamp_ms`` is the broker's append time when ``log_append_time`` is
    true (the topic has ``message.timestamp.type=LogAppendTime``); otherwise it
    is whatever the producer's client stamped, which the producer controls."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    log_append_time: bool = False
    headers: tuple[tuple[str, bytes], ...] = ()


class EventSink(Protocol):
    def send_batch(self, records: Sequence[tuple[bytes, bytes]]) -> list[Ack]:
        """Send (key, value) records; return one Ack per record, in order, only
        once every record is acknowledged. Raise TransportError otherwise."""
        ...

    def submit(self, records: Sequence[tuple[bytes, bytes]]) -> Callable[[], list[Ack]]:
        """Start sending (key, value) records and return at once; the returned
        callable waits for them and gives what ``send_batch`` would. Lets a
        caller hand over the next batch while the broker acknowledges this one."""
        ...

    def close(self) -> None: ...


class EventSource(Protocol):
    def poll_batch(self, timeout_ms: int, max_records: int) -> list[Message]: ...

    def caught_up(self) -> bool:
        """True once everything on the topic when reading started was returned."""
        ...

    def commit(self) -> None:
        """Commit the position after everything returned so far."""
        ...

    def close(self) -> None: ...
