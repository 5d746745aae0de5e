"""Event ids are RFC 9562 version-7 UUIDs: unique, ordered, nothing but time and chance."""

from __future__ import annotations

import time
import uuid

import pytest

from node.model import ids


def test_event_ids_are_uuid7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(ids.new_event_id())
    after = time.time_ns() // 1_000_000
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after
    assert len(str(value)) == 36


def test_event_ids_from_one_process_are_unique_and_in_order() -> None:
    made = [ids.new_event_id() for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)


def test_more_than_the_counter_holds_in_one_millisecond_stays_ordered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = time.time_ns()
    monkeypatch.setattr("node.model.ids.time.time_ns", lambda: frozen)
    made = [ids.new_event_id() for _ in range(5_000)]  # > 4,096: borrows the next ms
    assert len(set(made)) == len(made) and made == sorted(made)
    assert uuid.UUID(made[-1]).int >> 80 > frozen // 1_000_000
