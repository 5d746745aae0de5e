"""Joining a consumer group waits for the assignment, however long a busy group
takes to hand it over, on a real broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer

from node.transport.kafka_consumer import KafkaSource

#: The fixed deadline ``KafkaSource.open`` once had: a test under load failed
#: with "no partitions ... assigned in time" after it.
OLD_DEADLINE_S = 90.0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_open_waits_out_a_member_that_delays_the_rebalance(
    kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    """A member of the group that stops polling (a process stuck on a busy
    machine) holds the rebalance up until its poll interval runs out; the new
    member must still get its partitions, not give up at a fixed deadline."""
    busy = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        # The group waits this long for the stuck member to rejoin.
        max_poll_interval_ms=int((OLD_DEADLINE_S + 15) * 1000),
        session_timeout_ms=10_000,
    )
    try:
        started = time.monotonic()
        while not busy.assignment():
            assert time.monotonic() - started < 120, "the first member never joined"
            busy.poll(timeout_ms=500)
        assert len(busy.assignment()) == 3
        # From here `busy` never polls again; its heartbeat thread keeps it in.
        source = KafkaSource(kafka_bootstrap, topic, group_id)
        opened = time.monotonic()
        try:
            source.open()
            waited = time.monotonic() - opened
            assert len(source.consumer.assignment()) == 3  # the stuck member is gone
            assert source.caught_up()
        finally:
            source.close()
    finally:
        busy.close()
    # The scenario is real: the old fixed deadline would have expired first.
    assert waited > OLD_DEADLINE_S, f"assigned after {waited:.0f} s: the member did not delay it"
