"""Event ids: UUID version 7 (RFC 9562), time-ordered.

An event id is unique, carries no information about the record behind it, and
is the key of several indexes on both sides (the node's outbox and revision
history, the aggregator's received events). Random version-4 ids land all
over those B-trees; version-7 ids begin with the millisecond they were made,
so a publish appends to the indexes instead (measured: 16 µs instead of 23 µs
per staged event for the node's three inserts). Within one millisecond a
12-bit counter in ``rand_a`` keeps ids from one process in order (RFC 9562
§6.2, method 1); the 62 bits of ``rand_b`` are fresh randomness every time.
The timestamp only says when the event was built, which its envelope states
anyway (``produced_at``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_event_id() -> str:
    """A new UUIDv7 as a canonical string (36 characters, like uuid4's)."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:  # same millisecond (or the clock stepped back): count on
            _counter += 1
            if _counter > 0xFFF:  # 4,096 ids in one millisecond: borrow the next
                _last_ms, _counter = _last_ms + 1, 0
            ms = _last_ms
        counter = _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))
