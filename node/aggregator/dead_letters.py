"""Messages the aggregator could not decode, copied to the dead-letter topic.

Each goes with its reason and origin in headers, its original bytes and key
unchanged, and stays quarantined in the picture store too; one too large to
copy goes by reference (origin, size, SHA-256).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

from node.aggregator.apply import DEAD_LETTER_REASONS
from node.aggregator.relay import side_topic_sink
from node.config import Home, dead_letter_topic_for
from node.errors import RecordTooLarge, TransportError
from node.store.picture import PictureStore, Rejected
from node.transport.kafka_producer import KafkaSink


def dead_letter_topic(home: Home) -> str:
    return dead_letter_topic_for(home.config.kafka.topic)


#: Dead letters up to this size (value and key) are copied to the dead-letter
#: topic; larger ones go there by reference. Under Kafka's default message size
#: limit (1 MiB, headers and framing included), which the dead-letter topic and
#: its producer keep even when the shared topic's limit is raised.
DEAD_LETTER_COPY_LIMIT = 1_000_000


def _dead_letter_headers(r: Rejected, extra: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [
        ("corredor.reason", r.reason.encode()),
        ("corredor.detail", r.detail.encode()[:1000]),
        ("corredor.origin", f"{r.topic}/{r.partition}/{r.offset}".encode()),
        *extra,
    ]


def _reference(r: Rejected) -> tuple[bytes | None, bytes, list[tuple[str, bytes]], int, str]:
    """A dead letter set aside by reference: where the original is on the topic
    (and in quarantine), how big it is and its SHA-256, as a small JSON value."""
    raw = r.raw or b""
    digest = hashlib.sha256(raw).hexdigest()
    where = {
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "size": len(raw),
        "sha256": digest,
        "reason": r.reason,
    }
    headers = _dead_letter_headers(
        r,
        [
            ("corredor.by-reference", b"1"),
            ("corredor.size", str(len(raw)).encode()),
            ("corredor.sha256", digest.encode()),
        ],
    )
    key = r.key if r.key is not None and len(r.key) <= 1024 else None
    value = json.dumps(where, sort_keys=True).encode()
    return key, value, headers, len(raw), digest


def dead_letter(
    home: Home, store: PictureStore, address: str, security: dict[str, Any] | None
) -> int:
    """Copy undecodable messages, original bytes and key, to the dead-letter
    topic with their reason and origin in headers. They stay quarantined too.

    A message too large to copy (over ``DEAD_LETTER_COPY_LIMIT``, or refused by
    the broker as too large) goes by reference instead: origin, size and
    SHA-256, with the bytes kept in quarantine, so one oversized message never
    jams the step for every later one."""
    pending = store.pending_dead_letters(DEAD_LETTER_REASONS)
    if not pending:
        return 0

    def fits(r: Rejected) -> bool:
        return len(r.raw or b"") + len(r.key or b"") <= DEAD_LETTER_COPY_LIMIT

    copies = [(i, r) for i, r in pending if fits(r)]
    large = [(i, r) for i, r in pending if not fits(r)]
    sink = side_topic_sink(home, dead_letter_topic(home), address, security, "dead-letters")
    copied: list[int] = []
    try:
        batches = [copies] if copies else []
        while batches:
            batch = batches.pop()
            try:
                sink.send_with_headers(
                    [(r.key, r.raw or b"", _dead_letter_headers(r, [])) for _, r in batch]
                )
                copied.extend(i for i, _ in batch)
            except RecordTooLarge:
                # The broker's limit is lower than ours: find the ones it refuses
                # (a half already acknowledged may then be copied twice).
                if len(batch) == 1:
                    large.extend(batch)
                else:
                    batches.extend([batch[len(batch) // 2 :], batch[: len(batch) // 2]])
                _close_quietly(sink)
                sink = side_topic_sink(
                    home, dead_letter_topic(home), address, security, "dead-letters"
                )
        references = [(i, _reference(r)) for i, r in large]
        if references:
            sink.send_with_headers([(k, v, h) for _, (k, v, h, _, _) in references])
    finally:
        _close_quietly(sink)
    store.mark_dead_lettered(copied)
    store.mark_dead_lettered_by_reference(
        [(i, size, digest) for i, (_, _, _, size, digest) in references]
    )
    return len(pending)


def _close_quietly(sink: KafkaSink) -> None:
    with contextlib.suppress(TransportError):
        sink.close()
