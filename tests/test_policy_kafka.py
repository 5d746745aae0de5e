"""On a real broker: what the egress guard refuses never reaches the topic, and
the Secretariat applies the pseudonymised records that were let out."""

from __future__ import annotations

from pathlib import Path

from node import operations as ops
from node.policy.guard import normalise
from node.store.picture import PictureStore
from node.transport.kafka import read_all
from tests.factories import aggregator_for
from tests.test_policy_guard import PLANTED_NAME, PLANTED_PLACE, guard_home


def _messages(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(m.key, m.value) for m in read_all(bootstrap, topic)]


def test_a_refused_event_never_reaches_the_topic(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    n = 80
    home, rows = guard_home(tmp_path, n=n, topic=topic)
    home.config.kafka.bootstrap = kafka_bootstrap
    home.save()
    agg = aggregator_for(tmp_path, [home], topic=topic)  # trusts the key from now on
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()
    result = ops.publish(home)  # what ingest staged, and anything new
    assert result.plan.refused == 1
    assert result.outbox.pending == 0 and result.drain.acknowledged > 0

    messages = _messages(kafka_bootstrap, topic)
    assert len(messages) == result.drain.acknowledged > 0
    blobs = [x for pair in messages for x in pair if x]
    planted = {PLANTED_PLACE, PLANTED_NAME, "NUNEZ", "Núñez", normalise(PLANTED_PLACE)}
    found = [v for v in planted for b in blobs if v.encode("utf-8") in b]
    assert not found, f"{len(found)} refused values found on the topic"
    # the scan would have found the place if it had been let out: others are there
    other_place = rows[2]["encounter_place"]
    assert any(other_place.encode("utf-8") in b for b in blobs)

    codec = ops.event_codec()
    kinds = [codec.decode_envelope(codec.split_signed(v)[0]).kind for _, v in messages if v]
    assert kinds.count("EncounterRecord") == n - 1

    stats = ops.aggregate_once(agg)
    assert stats.rejected_total == 0 and stats.applied == len(messages)
    with PictureStore(agg.store_path) as store:
        records = store.view("encounter_view")
    assert len(records) == n - 1
    assert all(r["reporting_country"] == "USA" and r["record_pseudonym"] for r in records)
    assert not any(r.get("place") == PLANTED_PLACE for r in records)
