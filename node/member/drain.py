"""The outbox drain: staged events to Kafka, each row marked on its acknowledgement.

Staging writes events and the ledger in one transaction; only then does
``drain_outbox`` send them, marking each row acknowledged on the broker's
acknowledgement alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from node.store.node_store import NodeStore, OutboxRow
from node.transport.base import Ack, EventSink


@dataclass(frozen=True)
class DrainResult:
    sent: int
    acknowledged: int


def drain_outbox(
    store: NodeStore,
    sink: EventSink,
    *,
    batch_size: int = 5_000,
    progress: Callable[[int], None] | None = None,
    staging_done: Callable[[], bool] | None = None,
    idle_s: float = 0.01,
) -> DrainResult:
    """Send every pending outbox row; mark rows acknowledged only on ack.

    Batches overlap: the next batch is handed to the producer before the
    previous one's acknowledgements are awaited and recorded, so the producer
    is never left idle while SQLite works. With ``staging_done``, keep
    draining what a concurrent stager commits until it reports done and the
    outbox is empty.

    The whole drain holds the home's drain lock (``NodeStore.drain_lock``):
    a second drainer waits for it, then sends only what is still unacknowledged,
    so no row is sent by two drainers at once."""
    with store.drain_lock():
        return _drain_locked(store, sink, batch_size, progress, staging_done, idle_s)


def _drain_locked(
    store: NodeStore,
    sink: EventSink,
    batch_size: int,
    progress: Callable[[int], None] | None,
    staging_done: Callable[[], bool] | None,
    idle_s: float,
) -> DrainResult:
    sent = acked = 0
    after = 0
    inflight: tuple[list[OutboxRow], Callable[[], list[Ack]]] | None = None
    while True:
        done = staging_done is None or staging_done()  # read before looking, never after
        rows = store.pending(limit=batch_size, after_seq=after)
        if rows:
            waiter = sink.submit([(r.key, r.value) for r in rows])
            sent += len(rows)
            after = rows[-1].seq
        if inflight is not None:
            acked += _record_acks(store, *inflight, progress)
            inflight = None
        if rows:
            inflight = (rows, waiter)
        elif done:
            return DrainResult(sent, acked)
        else:
            time.sleep(idle_s)


def _record_acks(
    store: NodeStore,
    rows: list[OutboxRow],
    wait: Callable[[], list[Ack]],
    progress: Callable[[int], None] | None,
) -> int:
    acks = wait()
    store.mark_acked(
        [(r.seq, a.topic, a.partition, a.offset) for r, a in zip(rows, acks, strict=True)],
        rows,
    )
    if progress is not None:
        progress(len(rows))
    return len(acks)
