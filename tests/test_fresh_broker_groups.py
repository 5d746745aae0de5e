"""A broker on which no consumer group has ever committed has no group
coordinator until its offsets topic exists. ``aggregate --rebuild`` asks
first whether an aggregator runs in its group: on such a broker that answer
was an error ("CoordinatorNotAvailable"), found by the benchmark on its own
fresh broker. It is retriable, and the answer comes once the coordinator is
up: nobody is in the group."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.devkafka import LocalKafka
from node.transport.kafka_admin import active_group_members


@pytest.mark.kafka
def test_a_fresh_broker_answers_that_the_group_is_empty(kafka_jars: Path, tmp_path: Path) -> None:
    with LocalKafka(1, jars=kafka_jars, base_dir=tmp_path / "kafka") as kafka:
        assert active_group_members(kafka.bootstrap, "corredor-aggregator") == 0
