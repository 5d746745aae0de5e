"""Check messages in worker processes while one writer applies them.

The CPU of an aggregator goes to three things per event: reading it off the
broker, checking it (Avro decode, key and time, seal or signature, body
models, the regional floor: ``node.aggregator.checks.check_message``) and
writing it to SQLite. Checking needs nothing from the picture, so it runs in
worker processes here, a batch cut into contiguous chunks; the results come
back in message order and the aggregator's single writer applies them in that
order, in the batch's one transaction. Everything that depends on the picture
(a replay, a duplicate, revision order per subject) is decided by that writer
exactly as in a serial run, so a parallel run yields the same picture, the
same quarantine with the same reasons and the same audit log.

The writer starts on the first chunk as soon as it is checked, while the
workers check the next ones: reading, checking and writing overlap.

A worker that dies (killed, out of memory) loses only checks: nothing was
written for them, and the batch's transaction is not committed until every
message of it has been applied. The pool is replaced and the chunks not yet
returned are checked again; if the new pool fails too, they are checked in
this process. Either way each message is applied once.

Workers start with ``forkserver`` (never a fork of a process holding Kafka
client threads) and are reused for the aggregator's lifetime. A new manifest
(``Aggregator.use_keys``) reaches them with the next chunk.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from node.codec.events import EventCodec
from node.crypto.batch_seal import SealVerifier
from node.federation.manifest import KeyDirectory
from node.model.events import Envelope, Event, PolicyRef
from node.model.manifest import Manifest
from node.policy.floor import RegionalFloor
from node.transport.base import Message

log = logging.getLogger("corredor.aggregator")

#: Messages per chunk sent to a worker: large enough that the round trip is
#: small beside the work, small enough that the writer starts early. A seal's
#: batch (64 events by default) mostly falls in one chunk.
CHUNK = 256

#: Batches smaller than this are checked in the writer's process: a follow
#: loop at a low rate gains nothing from the round trip.
MIN_PARALLEL = 128


def default_workers() -> int:
    """One check worker per core."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Rejection:
    """A message a worker set aside (``MessageRejected`` as plain data)."""

    reason: str
    detail: str
    envelope: Envelope | None


@dataclass(frozen=True)
class KeySnapshot:
    """The manifest keys as a worker rebuilds them (public keys do not pickle)."""

    generation: int
    manifest: Manifest | None
    trusted: frozenset[str]

    @staticmethod
    def of(keys: KeyDirectory, generation: int) -> KeySnapshot:
        return KeySnapshot(generation, keys.manifest, frozenset(keys.key_ids()))

    def directory(self) -> KeyDirectory:
        return KeyDirectory(self.manifest, set(self.trusted))


# -- results as plain data ---------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _time_out(when: datetime | None) -> int | datetime | None:
    """A UTC time as integer microseconds (exact, and cheap to unpickle)."""
    if when is not None and when.utcoffset() == timedelta(0):
        return (when - _EPOCH) // _MICRO
    return when


def _time_in(value: Any) -> Any:
    return _EPOCH + value * _MICRO if isinstance(value, int) else value


def to_wire(checked: Any) -> tuple[Any, ...]:
    """A ``Checked`` as a tuple of plain values: unpickling dataclasses and
    aware datetimes cost the writer about as much as the checks themselves
    (27 against 3 us an event, measured), so workers send this instead."""
    e = checked.envelope
    return (
        e.event_id, e.producer, e.kind, e.subject, e.revision, _time_out(e.produced_at),
        e.policy.id, e.policy.version, e.policy.sha256, e.audiences, e.purposes, e.key_id,
        e.retain_until, _time_out(e.embargo_until), e.body,
        checked.event.body, checked.event.body_schema_version, checked.digest,
        _time_out(checked.appended_at), checked.restricted, checked.recipients,
    )  # fmt: skip


def from_wire(wire: tuple[Any, ...]) -> object:
    """The ``Checked`` that ``to_wire`` was made from."""
    from node.aggregator.checks import Checked

    (event_id, producer, kind, subject, revision, produced_at, policy_id, policy_version,
     policy_sha, audiences, purposes, key_id, retain_until, embargo_until, env_body,
     body, body_version, digest, appended_at, restricted, recipients) = wire  # fmt: skip
    envelope = Envelope(
        event_id, producer, kind, subject, revision, _time_in(produced_at),
        PolicyRef(policy_id, policy_version, policy_sha), audiences, purposes, key_id,
        retain_until, _time_in(embargo_until), env_body,
    )  # fmt: skip
    return Checked(
        envelope, Event(envelope, body, body_version), digest,
        _time_in(appended_at), restricted, recipients,
    )  # fmt: skip


# -- in the worker ------------------------------------------------------------------


@dataclass
class _WorkerState:
    codec: EventCodec
    floor: RegionalFloor
    time_of: Callable[[Message], datetime]
    seals: SealVerifier
    generation: int = -1
    keys: KeyDirectory | None = None


_state: _WorkerState | None = None


def _init_worker(
    codec: EventCodec, floor: RegionalFloor, time_of: Callable[[Message], datetime]
) -> None:
    global _state
    _state = _WorkerState(codec, floor, time_of, SealVerifier())


def _check_chunk(snapshot: KeySnapshot, messages: list[Message]) -> list[object]:
    """Check a chunk in a worker: one ``Checked`` or ``Rejection`` per message."""
    from node.aggregator.checks import MessageRejected, check_message

    state = _state
    assert state is not None, "worker not initialised"
    if state.keys is None or state.generation != snapshot.generation:
        state.keys = snapshot.directory()
        state.generation = snapshot.generation
    out: list[object] = []
    for msg in messages:
        try:
            checked = check_message(
                state.codec, state.keys, state.floor, state.time_of, msg, state.seals
            )
            out.append(to_wire(checked))
        except MessageRejected as rej:
            out.append(Rejection(rej.reason, rej.detail, rej.envelope))
    return out


# -- in the aggregator --------------------------------------------------------------


class CheckPool:
    """Worker processes checking chunks of a batch, results in message order."""

    def __init__(
        self,
        workers: int,
        codec: EventCodec,
        floor: RegionalFloor,
        time_of: Callable[[Message], datetime],
        *,
        check_here: Callable[[Message], object],
    ) -> None:
        self.workers = workers
        self._args = (codec, floor, time_of)
        #: Checks one message in this process (the fallback when workers fail).
        self._check_here = check_here
        self._pool: ProcessPoolExecutor | None = None
        #: Worker processes replaced after one died.
        self.restarts = 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_init_worker,
                initargs=self._args,
            )
        return self._pool

    def pids(self) -> list[int]:
        """The worker processes' ids (started on the first parallel batch)."""
        pool = self._pool
        procs = getattr(pool, "_processes", None) if pool is not None else None
        return sorted(procs) if procs else []

    def _submit(
        self, snapshot: KeySnapshot, chunks: Sequence[list[Message]]
    ) -> list[Future[list[object]]]:
        pool = self._executor()
        return [pool.submit(_check_chunk, snapshot, chunk) for chunk in chunks]

    def _replace(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1

    def check(self, batch: Sequence[Message], snapshot: KeySnapshot) -> Iterator[object]:
        """One result per message of ``batch``, in order, yielded chunk by chunk
        as the workers return them."""
        chunks = [list(batch[i : i + CHUNK]) for i in range(0, len(batch), CHUNK)]
        attempts = 0
        futures: list[Future[list[object]]] = []
        done = 0
        while done < len(chunks):
            try:
                if not futures:
                    futures = self._submit(snapshot, chunks[done:])
                results = futures[0].result()
            except BrokenProcessPool:
                attempts += 1
                log.warning(
                    "a check worker died; %d chunk(s) of this batch are checked again%s",
                    len(chunks) - done,
                    " in the aggregator's process" if attempts > 1 else "",
                )
                self._replace()
                futures = []
                if attempts > 1:
                    for chunk in chunks[done:]:
                        yield from (self._check_here(m) for m in chunk)
                    return
                continue
            futures.pop(0)
            done += 1
            for r in results:
                yield from_wire(r) if isinstance(r, tuple) else r

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
