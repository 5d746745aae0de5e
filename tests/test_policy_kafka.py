"""On a real broker: what the egress guard refuses never reaches the topic, and
the Secretariat applies the pseudonymised records that were let out."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from node.aggregator.run import aggregate_once
from node.cli import main
from node.home import event_codec
from node.member.intake import ingest
from node.member.publish import publish
from node.policy.guard import normalise
from node.store.picture import PictureStore
from node.transport.kafka_consumer import read_all
from tests.factories import aggregator_for, member_with_data
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
    result = publish(home)  # what ingest staged, and anything new
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

    codec = event_codec()
    kinds = [codec.decode_envelope(codec.split_signed(v)[0]).kind for _, v in messages if v]
    assert kinds.count("EncounterRecord") == n - 1

    stats = aggregate_once(agg)
    assert stats.rejected_total == 0 and stats.applied == len(messages)
    with PictureStore(agg.store_path) as store:
        records = store.view("encounter_view")
    assert len(records) == n - 1
    assert all(r["reporting_country"] == "USA" and r["record_pseudonym"] for r in records)
    assert not any(r.get("place") == PLANTED_PLACE for r in records)


def test_publish_json_counts_the_reference_items_the_guard_stopped(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    """The top-level ``refused`` of ``publish --format json`` counts every event
    the guard stopped, reference items included (it once said 0 while the
    exchanges' own ``refused`` added up to 24)."""
    home, rows, _ = member_with_data(tmp_path, "PAN", 200, topic=topic)
    home.config.kafka.bootstrap = kafka_bootstrap
    home.save()
    # Three focal-point records carry a migrant's name (a clerk's slip); one is clean.
    items = [
        {
            "country": "PAN",
            "focal_point_id": f"PAN-FP-{i:02d}",
            "name": f"{rows[i]['given_names']} {rows[i]['family_name']}" if i < 3 else "Ana Ruiz",
            "role": "Analyst",
            "institution": "Migration authority",
            "email": f"fp{i}@example.org",
            "languages": ["es"],
        }
        for i in range(4)
    ]
    path = tmp_path / "focal.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    assert ingest(home, path).stored == 4

    out = CliRunner().invoke(main, ["--home", str(home.path), "publish", "--format", "json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)  # the guard's warnings go to stderr
    per_exchange = sum(int(e["refused"]) for e in summary["exchanges"].values())
    assert summary["exchanges"]["FocalPoint"]["refused"] == 3
    assert summary["exchanges"]["FocalPoint"]["new"] == 1
    assert per_exchange == 3
    assert summary["refused"] == 3
    assert summary["outbox_pending"] == 0
    names = [items[i]["name"] for i in range(3)]
    blobs = b"".join(b for m in read_all(kafka_bootstrap, topic) for b in (m.key, m.value) if b)
    assert not [n for n in names if str(n).encode("utf-8") in blobs]
    assert b"Ana Ruiz" in blobs  # the scan finds what was let out
