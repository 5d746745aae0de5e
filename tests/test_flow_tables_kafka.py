"""On a real broker: table cells (issue 16) leave as FlowStatistic events with
``_T`` where they sum, the Secretariat applies them beside the detail, and a
later publish revises or withdraws them by subject like any cell."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

from node.aggregator.run import aggregate_once
from node.demo.synth import generate_encounters, write_csv
from node.member.intake import ingest
from node.member.publish import publish
from node.store.picture import PictureStore
from node.transport.kafka_consumer import read_all
from tests.factories import START, aggregator_for, member_with_data

DETAIL = ("nationality", "sex", "age_band", "previous_country")


def _age(born: date, on: date) -> int:
    return on.year - born.year - (0 if (on.month, on.day) >= (born.month, born.day) else 1)


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _truth(rows: list[dict[str, str]]) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """Counted here from the raw rows: per week, and per week and nationality."""
    weeks: Counter[str] = Counter()
    by_nat: Counter[tuple[str, str]] = Counter()
    for row in rows:
        week = _week(date.fromisoformat(row["encounter_date"]))
        weeks[week] += 1
        by_nat[(week, row["nationality"])] += 1
    return weeks, by_nat


def _applied(agg_path: Path) -> list[dict[str, object]]:
    with PictureStore(agg_path) as store:
        return store.flow_cells()


def test_table_cells_reach_the_picture_and_are_revised(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    home, rows, _ = member_with_data(tmp_path, "PAN", 900, seed=5, weeks=3, topic=topic)
    home.config.kafka.bootstrap = kafka_bootstrap
    home.save()
    agg = aggregator_for(tmp_path, [home], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()
    first = publish(home)
    assert first.outbox.pending == 0 and first.drain.acknowledged > 0
    stats = aggregate_once(agg)
    assert stats.rejected_total == 0, stats.as_dict()

    cells = _applied(agg.store_path)
    totals = [c for c in cells if all(c[d] == "_T" for d in DETAIL)]
    weeks, by_nat = _truth(rows)
    # the national weekly total: exact, one per week, under its own subject
    assert {c["period"]: c["count"] for c in totals} == dict(weeks)
    assert all("nationality=_T" in str(c["subject"]) for c in totals)
    nat_cells = [
        c for c in cells if c["nationality"] != "_T" and all(c[d] == "_T" for d in DETAIL[1:])
    ]
    assert nat_cells, "no week x nationality cell reached the picture"
    for c in nat_cells:
        assert c["count"] == by_nat[(str(c["period"]), str(c["nationality"]))]
    detail = [c for c in cells if all(c[d] != "_T" for d in DETAIL if c[d] is not None)]
    assert detail and len({c["subject"] for c in cells}) == len(cells)

    # late records: a second publish revises the totals (next revision, same subject)
    # the same seed extends the list: new encounters over the same weeks
    late = generate_encounters("PAN", 960, seed=5, start=START, weeks=3)[900:]
    path = tmp_path / "late.csv"
    write_csv(late, path)
    assert ingest(home, path).stored == len(late)
    second = publish(home)  # sends what ingest staged for the new records
    assert second.outbox.pending == 0
    stats = aggregate_once(agg)
    assert stats.rejected_total == 0, stats.as_dict()
    weeks, _ = _truth(rows + late)
    cells = _applied(agg.store_path)
    revised = {c["period"]: c for c in cells if all(c[d] == "_T" for d in DETAIL)}
    assert {p: c["count"] for p, c in revised.items()} == dict(weeks)
    assert max(int(str(c["revision"])) for c in revised.values()) == 2
    # every event of both publishes is on the topic, none rejected
    assert sum(1 for _ in read_all(kafka_bootstrap, topic)) >= len(cells)
