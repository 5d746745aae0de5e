"""Coverage under the shipped policies (issue 16): three countries, about 4,000
records over six weeks. Read from the published cells' labels and checked
against counts made here from the raw rows: every week's national total is
published exactly, and exact week x nationality numbers account for at least
90% of the encounters. No published number exceeds the truth."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from node.config import policies_dir
from node.home import regional_floor
from node.member.flow_release import plan_flow_release
from node.member.preview import preview_policy
from node.policy.loader import load_policy
from node.store.node_store import NodeStore
from tests.factories import member_with_data

DETAIL = ("nationality", "sex", "age_band", "previous_country")


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@pytest.mark.parametrize("country", ["PAN", "CRI", "MEX"])
def test_exact_totals_and_nationality_coverage(tmp_path: Path, country: str) -> None:
    home, rows, _ = member_with_data(tmp_path, country, 1350, seed=16, weeks=6)
    policy = load_policy(policies_dir() / f"{country}.yaml", regional_floor())
    weeks: Counter[str] = Counter()
    by_nat: Counter[tuple[str, str]] = Counter()
    for row in rows:
        week = _week(date.fromisoformat(row["encounter_date"]))
        weeks[week] += 1
        by_nat[(week, row["nationality"])] += 1
    with NodeStore(home.store_path) as store:
        release = plan_flow_release(store, policy)
    summed = [d for d in DETAIL if d in policy.exchanges.flow_statistics.dimensions]
    totals: dict[str, int] = {}
    nat_cells: dict[tuple[str, str], int] = {}
    for cell in release.cells:
        dims = dict(cell.dimensions)
        if all(dims.get(d) == "_T" for d in summed):
            totals[cell.period] = cell.count
        elif dims.get("nationality") not in (None, "_T") and all(
            dims.get(d) == "_T" for d in summed if d != "nationality"
        ):
            nat_cells[(cell.period, dims["nationality"])] = cell.count
    assert totals == dict(weeks)  # 100% at country x week, exact
    for key, count in nat_cells.items():
        assert count == by_nat[key]
    exact = sum(nat_cells.values())
    assert exact >= 0.9 * len(rows), f"{exact} of {len(rows)}"
    shown = preview_policy(home, policy)["exchanges"][0]["coverage"]
    assert shown["total"] == 1.0 and shown["nationality"] >= exact / len(rows) - 1e-4
