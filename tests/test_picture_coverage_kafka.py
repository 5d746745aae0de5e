"""Issue 16, on data of our own: three countries, about 4,000 raw records over
six weeks, published by the real nodes to the real broker, aggregated, and
read back as the picture. Exact numbers must account for at least 90% of the
encounters at week x country x nationality and for all of them at country x
week, and no number may exceed the truth (worked out here from the raw rows).

POLICIES: the shipped PAN, CRI and MEX policies, unchanged: each publishes
the tables issue 16 gives them (the national total, week x nationality or
region, and the detail below them).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from node.aggregator.run import aggregate_once
from node.config import Home, policies_dir
from node.demo.synth import generate_encounters, write_csv
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.model.codes import SUBREGION
from node.report.audience import Scope
from node.report.corridors import route_legs
from node.report.flows import rows_of
from node.report.regional import admitted_cells
from node.report.trends import trends
from node.store.picture import PictureStore
from tests.factories import START, aggregator_for

VOLUMES = {"PAN": 1700, "CRI": 1400, "MEX": 900}
WEEKS = 6
SEED = 16


def _policy(country: str) -> Path:
    """The shipped policy, as a country would run it."""
    path = policies_dir() / f"{country}.yaml"
    assert (
        "tables" in yaml.safe_load(path.read_text(encoding="utf-8"))["exchanges"]["flow_statistics"]
    ), f"{path} publishes no tables"
    return path


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@pytest.fixture
def federation(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> tuple[Home, dict[str, list[dict[str, str]]]]:
    homes, raw = [], {}
    for i, (country, n) in enumerate(VOLUMES.items()):
        home = init_member(
            tmp_path / country.lower(), country, topic=topic, policy=_policy(country)
        )
        home.config.kafka.bootstrap = kafka_bootstrap
        home.save()
        rows = generate_encounters(country, n, seed=SEED + i, start=START, weeks=WEEKS)
        write_csv(rows, tmp_path / f"{country}.csv")
        assert ingest(home, tmp_path / f"{country}.csv").stored == n
        homes.append(home)
        raw[country] = rows
    agg = aggregator_for(tmp_path, homes, topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()
    for home in homes:
        result = publish(home)
        assert result.outbox.pending == 0 and result.drain.acknowledged > 0
    stats = aggregate_once(agg)
    assert stats.rejected_total == 0 and stats.applied > 0
    return agg, raw


def test_exact_numbers_cover_the_encounters_and_none_exceeds_the_truth(
    federation: tuple[Home, dict[str, list[dict[str, str]]]],
) -> None:
    agg, raw = federation
    by_nat: Counter[tuple[str, str, str]] = Counter()
    by_region: Counter[tuple[str, str, str | None]] = Counter()
    by_week: Counter[tuple[str, str]] = Counter()
    by_leg: Counter[tuple[str, str]] = Counter()
    for country, rows in raw.items():
        for enc in rows:
            week = _week(date.fromisoformat(enc["encounter_date"]))
            # a week's detail may be coarsened to its month (the month of its
            # Thursday, ISO 8601), and a month's number bounded by its truth
            year, w = week.split("-W")
            thursday = date.fromisocalendar(int(year), int(w), 4)
            for period in (week, f"{thursday.year}-{thursday.month:02d}"):
                by_nat[(period, country, enc["nationality"])] += 1
                by_region[(period, country, SUBREGION.get(enc["nationality"]))] += 1
            by_week[(week, country)] += 1
            by_leg[(enc["previous_country"] or "_U", country)] += 1
    total = sum(by_week.values())
    assert total == sum(VOLUMES.values())

    with PictureStore(agg.store_path) as store:
        cells = admitted_cells(store, Scope("TS", None, datetime.now(UTC)))
    flows = rows_of(cells)
    weekly_totals = [r for r in trends(cells)["totals"] if r["reporting_country"] != "_T"]
    legs = route_legs(cells)

    # week x country x nationality
    exact = 0
    for r in flows:
        assert r.status in ("exact", "lower-bound", "rounded"), r
        if r.nationality is None:  # a region's number: bounded by the region's truth,
            # and no number of a nationality, so it covers none at this level
            assert r.count <= by_region[(r.period, r.reporting_country, r.nationality_region)], r
            continue
        truth = by_nat[(r.period, r.reporting_country, r.nationality)]
        assert r.count <= truth, r
        if r.status == "exact":
            assert r.count == truth, r
            exact += r.count
    assert exact >= 0.9 * total, f"exact flows cover {exact} of {total} encounters"

    # country x week: every country's weekly total exact and true
    assert {(r["period"], r["reporting_country"]): r["count"] for r in weekly_totals} == dict(
        by_week
    )
    assert all(r["status"] == "exact" for r in weekly_totals)

    # corridor legs are never above the truth
    for g in legs:
        assert g["count"] <= by_leg[(g["from"], g["to"])], g
