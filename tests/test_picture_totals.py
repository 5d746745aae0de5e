"""Issue 16: the picture answers each question from the most precise table a
country published (``_T`` totals), never adds a total to the cells it sums,
and gives every number its status in every format.

The fixture (``tests/totals_data.py``) is signed events of three members
applied by the real aggregator. Expected numbers are worked out here from the
fixture's cells by hand, not by the code under test.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from node.cli import main
from node.config import Home
from node.report.audience import Scope
from node.report.flows import country_total_rows, picture_json_for, render_flow_tables, rows_of
from node.report.html import report_html
from node.report.reference import rows_csv
from node.report.regional import admitted_cells, regional_rows
from node.report.sdmx import flows_sdmx_csv
from node.report.tables import Number, combine
from node.report.views import STAT_VIEWS, render_view, view_csv_rows, view_data
from node.store.picture import PictureStore
from tests.totals_data import CELLS, build_totals_picture

GOLDEN = Path(__file__).parent / "golden" / "picture"
STATUSES = {"exact", "rounded", "noisy", "lower-bound", "suppressed"}


@pytest.fixture(scope="module")
def totals(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return build_totals_picture(tmp_path_factory.mktemp("totals"))


def _scope(audience: str = "TS") -> Scope:
    return Scope(audience, None, datetime.now(UTC))


def _flows(agg: Home, audience: str = "TS") -> dict[tuple[str, str, str], dict[str, object]]:
    with PictureStore(agg.store_path) as store:
        doc = picture_json_for(store, _scope(audience))
    return {(r["period"], r["reporting_country"], r["nationality"]): r for r in doc["flows"]}


def _cli(agg: Home, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(agg.path), *args])
    assert result.exit_code == 0, result.output
    return result.output


# -- the most precise table, each cell once ---------------------------------------------


def test_flows_take_the_nationality_total_where_one_was_published(totals: Home) -> None:
    flows = _flows(totals)
    # PAN published CHN's week total (120): not its detail cells (40 + 50), and
    # not the total plus the detail (210).
    assert flows[("2024-W10", "PAN", "CHN")]["count"] == 120
    assert flows[("2024-W10", "PAN", "CHN")]["status"] == "exact"
    assert flows[("2024-W10", "PAN", "HTI")]["count"] == 60
    assert flows[("2024-W10", "CRI", "CHN")] | {} == {
        **flows[("2024-W10", "CRI", "CHN")],
        "count": 100,
        "status": "rounded",
    }
    # No row for the national total itself: "_T" is never a nationality.
    assert all(k[2] != "_T" for k in flows)


def test_without_a_total_the_detail_sum_is_a_lower_bound(totals: Home) -> None:
    flows = _flows(totals)
    assert flows[("2024-W10", "MEX", "CHN")]["count"] == 12 + 15
    assert flows[("2024-W10", "MEX", "CHN")]["status"] == "lower-bound"
    # W11: MEX's detail adds up to its exact national total (12 + 15 + 13 = 40),
    # so nothing is missing and the sums are exact.
    assert flows[("2024-W11", "MEX", "CHN")]["count"] == 27
    assert flows[("2024-W11", "MEX", "CHN")]["status"] == "exact"
    assert flows[("2024-W11", "MEX", "HTI")]["status"] == "exact"


def test_noisy_cells_say_so(totals: Home) -> None:
    flows = _flows(totals)
    row = flows[("2024-W11", "PAN", "CHN")]
    assert (row["count"], row["status"]) == (130, "noisy")
    assert row["ci95"] == [121, 139]  # the interval its v2 event carries


def test_country_week_takes_the_national_total(totals: Home) -> None:
    with PictureStore(totals.store_path) as store:
        data = view_data("trends", store, _scope())
    by = {(r["period"], r["reporting_country"]): r for r in data["totals"]}
    assert (by[("2024-W10", "PAN")]["count"], by[("2024-W10", "PAN")]["status"]) == (200, "exact")
    assert (by[("2024-W10", "CRI")]["count"], by[("2024-W10", "CRI")]["status"]) == (150, "rounded")
    assert (by[("2024-W10", "MEX")]["count"], by[("2024-W10", "MEX")]["status"]) == (
        36,
        "lower-bound",
    )
    assert by[("2024-W11", "MEX")]["count"] == 40 and by[("2024-W11", "MEX")]["status"] == "exact"
    region = by[("2024-W10", "_T")]
    assert region["count"] == 200 + 150 + 36
    assert region["status"] == "lower-bound"  # MEX's part is a lower bound
    assert region["countries"] == ["PAN", "CRI", "MEX"]
    assert by[("2024-W11", "_T")]["count"] == 210 + 90 + 40
    assert by[("2024-W11", "_T")]["status"] == "noisy"
    assert data["unit"] == "encounters"


def test_each_published_cell_is_counted_at_most_once(totals: Home) -> None:
    """An independent scan: in every view, a country-period's numbers add up to
    at most the largest sum of one of its tables (a _T cell summed with its
    detail would exceed it)."""
    tables: dict[tuple[str, str, tuple[bool, ...]], int] = {}
    for country, period, *dims, count, _ in CELLS:
        key = (country, period, tuple(d == "_T" for d in dims))
        tables[key] = tables.get(key, 0) + int(count)
    ceiling: dict[tuple[str, str], int] = {}
    for (country, period, _), n in tables.items():
        ceiling[(country, period)] = max(ceiling.get((country, period), 0), n)
    with PictureStore(totals.store_path) as store:
        cells = admitted_cells(store, _scope())
        flows = rows_of(cells)
        legs = view_data("corridors", store, _scope())["legs"]
    shown: dict[tuple[str, str], int] = {}
    for r in flows:
        shown[(r.reporting_country, r.period)] = (
            shown.get((r.reporting_country, r.period), 0) + r.count
        )
    for at, n in shown.items():
        assert n <= ceiling[at], at
    assert sum(g["count"] for g in legs) <= sum(ceiling.values())
    # corridors: PAN's legs come from its detail table only (40 + 50 + 30).
    pan = [g for g in legs if g["to"] == "PAN"]
    assert pan == [{**pan[0], "from": "COL", "count": 120, "status": "lower-bound"}]


def test_protected_encounters_under_an_exact_total(totals: Home) -> None:
    with PictureStore(totals.store_path) as store:
        cells = admitted_cells(store, _scope())
        rows = country_total_rows(cells, rows_of(cells))
        legs = view_data("corridors", store, _scope())["legs"]
    by = {(r["period"], r["reporting_country"]): r for r in rows}
    # PAN W10: exact total 200, nationality totals 120 + 60 published.
    assert by[("2024-W10", "PAN")]["protected"] == 20
    assert by[("2024-W11", "MEX")]["protected"] == 0
    # Rounded or lower-bound totals give no such difference.
    assert by[("2024-W10", "CRI")]["protected"] is None
    assert by[("2024-W10", "MEX")]["protected"] is None
    # PAN's only leg (COL) under its exact total of 200: 80 encounters protected.
    assert next(g for g in legs if g["to"] == "PAN")["protected"] == 200 - 120


def test_regional_totals_name_the_countries_they_add(totals: Home) -> None:
    with PictureStore(totals.store_path) as store:
        data = view_data("regional", store, _scope())
    row = next(r for r in data["rows"] if (r["period"], r["nationality"]) == ("2024-W10", "CHN"))
    assert row["total"] == 120 + 100 + 27
    assert row["status"] == "lower-bound"
    assert row["total_countries"] == ["PAN", "CRI", "MEX"]
    assert row["numbers"]["CRI"]["status"] == "rounded"
    assert row["numbers"]["PAN"] == {
        "count": 120,
        "status": "exact",
        "ci95": None,
        "protected": None,
    }


def test_a_partners_total_is_not_called_the_region(totals: Home) -> None:
    """PAN (a member) gets what every member was released: its total covers
    the countries releasing to it, and says so."""
    with PictureStore(totals.store_path) as store:
        mine = view_data("trends", store, _scope("PAN"))
        ts = view_data("trends", store, _scope("TS"))
    assert mine["total_label"] == "the countries releasing to this audience"
    assert ts["total_label"] == "the region (countries reporting)"
    text = _cli(totals, "report", "trends", "--audience", "PAN")
    assert "Releasing to PAN" in text and "Region" not in text


def test_coverage_in_report_and_status(totals: Home) -> None:
    with PictureStore(totals.store_path) as store:
        doc = picture_json_for(store, _scope())
    cov = {r["country"]: r for r in doc["coverage"]}
    # PAN: 410 encounters (200 + 210 noisy); exact in flows: 120 + 60.
    assert cov["PAN"]["encounters"] == 410
    assert cov["PAN"]["views"]["flows"] == {"exact": 180, "share": round(180 / 410, 4)}
    assert cov["PAN"]["views"]["trends"]["exact"] == 200
    assert cov["CRI"]["views"]["flows"]["exact"] == 0  # rounded is not exact
    assert cov["MEX"]["views"]["trends"]["exact"] == 40
    status = json.loads(_cli(totals, "status", "--format", "json"))
    assert {r["country"]: r for r in status["coverage"]} == cov
    table = _cli(totals, "status")
    assert "Coverage" in table and "43.9%" in table


# -- noisy intervals ------------------------------------------------------------------


def test_noisy_intervals_come_from_the_stored_cell_and_add_in_quadrature(
    tmp_path: Path,
) -> None:
    db = tmp_path / "noisy.db"
    with PictureStore(db) as store, store.transaction() as conn:
        for i, (country, n, lo, hi) in enumerate((("PAN", 130, 121, 139), ("CRI", 80, 68, 92))):
            event = f"ev{i}"
            body = {
                "reporting_country": country,
                "period": "2024-W11",
                "period_type": "ISO_WEEK",
                "nationality": "CHN",
                "count": n,
                "obs_status": "N",
                "ci95_low": lo,
                "ci95_high": hi,
            }
            conn.execute(
                "INSERT INTO flow_cell (subject, reporting_country, period, period_type, "
                "nationality, count, obs_status, revision, event_id, ci95_low, ci95_high) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (f"s{i}", country, "2024-W11", "ISO_WEEK", "CHN", n, "N", 1, event, lo, hi),
            )
            conn.execute(
                "INSERT INTO event_revision (event_id, subject, kind, producer, revision, "
                "withdrawn, body, schema_version, produced_at, applied) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    event,
                    f"s{i}",
                    "FlowStatistic",
                    country,
                    1,
                    0,
                    json.dumps(body),
                    2,
                    "2026-01-01T00:00:00+00:00",
                    1,
                ),
            )
            conn.execute(
                "INSERT INTO event_use (event_id, audiences, purposes) VALUES (?,?,?)",
                (event, '["TS"]', '["statistics"]'),
            )
    with PictureStore(db) as store:
        cells = admitted_cells(store, _scope())
        _, rows = regional_rows(cells)
    by = {c.country: c.ci95 for c in cells}
    assert by == {"PAN": (121, 139), "CRI": (68, 92)}
    (row,) = rows
    assert row.total == 210 and row.total_number.status == "noisy"
    # half-widths 9 and 12 add in quadrature to 15
    assert row.total_number.ci95 == (195, 225)
    assert combine([Number(5, "noisy", None), Number(3)]).ci95 is None


# -- encounters are not persons -------------------------------------------------------


def test_legs_count_distinct_linked_people_above_k(totals: Home, tmp_path: Path) -> None:
    import shutil

    db = tmp_path / "linked.db"
    shutil.copy(totals.store_path, db)
    with PictureStore(db) as store, store.transaction() as conn:
        # 12 people reach PAN from COL, 3 of them met twice (15 records); 4 reach
        # CRI from PAN.
        records = [(f"tok{p}", "PAN", "COL", "2024-W10") for p in range(12)]
        records += [(f"tok{p}", "PAN", "COL", "2024-W11") for p in range(3)]
        records += [(f"tok{p}", "CRI", "PAN", "2024-W10") for p in range(4)]
        for i, (token, country, previous, week) in enumerate(records):
            event = f"rec{i}"
            conn.execute(
                "INSERT INTO encounter_view VALUES (?,?,?,?,?,?,?,?)",
                (
                    f"EncounterRecord|{country}|{event}",
                    country,
                    token,
                    week,
                    "CHN",
                    json.dumps(
                        {
                            "reporting_country": country,
                            "encounter_period": week,
                            "linkage_token": token,
                            "previous_country": previous,
                        }
                    ),
                    1,
                    event,
                ),
            )
            conn.execute(
                "INSERT INTO event_use (event_id, audiences, purposes) VALUES (?,?,?)",
                (event, '["TS"]', '["statistics"]'),
            )
    with PictureStore(db) as store:
        data = view_data("corridors", store, _scope(), k=10)
        text_console = Console(record=True, width=120)
        render_view(text_console, "corridors", data)
    legs = {(g["from"], g["to"]): g for g in data["legs"]}
    assert legs[("COL", "PAN")]["people"] == 12  # 15 encounter records, 12 people
    assert legs[("PAN", "CRI")]["people"] is None  # 4 < k
    assert "<10" in text_console.export_text()


# -- every format ---------------------------------------------------------------------


def _normalise(text: str) -> str:
    import re

    return re.sub(r'"?generated_at"?: ?"[^"]*"', '"generated_at": "-"', text)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    text = _normalise(text)
    if os.environ.get("CORREDOR_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with CORREDOR_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("view", STAT_VIEWS)
def test_golden_statuses_in_every_statistical_view(totals: Home, view: str) -> None:
    with PictureStore(totals.store_path) as store:
        data = view_data(view, store, _scope())
    _golden(f"totals-{view}.json", json.dumps(data, indent=2, default=str) + "\n")
    text = rows_csv(view_csv_rows(view, data))
    _golden(f"totals-{view}.csv", text)
    for row in csv.DictReader(io.StringIO(text)):
        assert row["unit"] in ("encounters", "people")
    console = Console(record=True, width=140)
    render_view(console, view, data)
    _golden(f"totals-{view}.txt", console.export_text())


def test_golden_statuses_in_flows_sdmx_and_html(totals: Home) -> None:
    with PictureStore(totals.store_path) as store:
        scope = _scope()
        cells = admitted_cells(store, scope)
        doc = picture_json_for(store, scope)
        flows = rows_of(cells)
        console = Console(record=True, width=140)
        render_flow_tables(console, flows, totals=country_total_rows(cells, flows))
        html = report_html(store, scope)
    _golden("totals-flows.json", json.dumps(doc, indent=2) + "\n")
    _golden("totals-flows.txt", console.export_text())
    _golden("totals-flows.csv", _cli(totals, "report", "--format", "csv"))
    _golden("totals-regional.sdmx.csv", flows_sdmx_csv(cells, "TS"))
    for status in ("exact", "rounded", "noisy", "lower-bound", "suppressed"):
        assert f'data-status="{status}"' in html, status
    assert "Unit: <b>encounters</b>" in html and "Coverage" in html
    _golden("totals-report.html", html.replace(scope.now.isoformat(timespec="seconds"), "-"))
    seen = {r["status"] for r in doc["flows"]} | {r["status"] for r in doc["country_totals"]}
    assert seen == STATUSES - {"suppressed"}


def test_the_folder_api_gives_each_flow_row_its_status(totals: Home) -> None:
    from node.folder.data import FlowFilter, flow_page, flow_rows_dicts

    with PictureStore(totals.store_path) as store:
        rows = flow_rows_dicts(flow_page(store, _scope(), FlowFilter()))
    by = {(r["period"], r["reporting_country"], r["nationality"]): r for r in rows}
    assert by[("2024-W10", "PAN", "CHN")]["status"] == "exact"
    assert by[("2024-W10", "MEX", "CHN")]["status"] == "lower-bound"
    assert by[("2024-W11", "PAN", "CHN")]["obs_status"] == "N"
    assert all(r["unit"] == "encounters" for r in rows)


def test_no_protected_count_from_rounded_or_noisy_rows() -> None:
    """An exact total over rounded rows: the difference is rounding, not protected cells."""
    from node.report.regional import FlowCell

    def cell(nat: str, n: int, status: str) -> FlowCell:
        return FlowCell(
            "2024-W10",
            "ISO_WEEK",
            "PAN",
            nat,
            None,
            "_T" if nat else None,
            n,
            status == "E",
            "_T",
            "_T",
            status,
        )

    for status in ("E", "N"):
        cells = [cell("_T", 100, "A"), cell("CHN", 55, status), cell("HTI", 30, "A")]
        (row,) = country_total_rows(cells, rows_of(cells))
        assert (row["count"], row["status"], row["protected"]) == (100, "exact", None)
    cells = [cell("_T", 100, "A"), cell("CHN", 55, "A"), cell("HTI", 30, "A")]
    (row,) = country_total_rows(cells, rows_of(cells))
    assert row["protected"] == 15


def test_a_month_answer_stays_beside_weeks_of_its_own_table_only() -> None:
    """A country whose detail was coarsened to a month (its week and month
    detail cells partition the encounters) keeps the month's leg beside the
    weeks' legs; a month nationality row is left out where a week of its
    week x nationality table (which holds those encounters too) answers it."""
    from node.report.regional import FlowCell
    from node.report.tables import resolve

    week = [
        FlowCell("2024-W05", "ISO_WEEK", "CRI", "CUB", None, "PAN", 7, False, "F", "18-29"),
        FlowCell("2024-W05", "ISO_WEEK", "CRI", "CUB", None, "_T", 30, False, "_T", "_T"),
    ]
    month = FlowCell("2024-02", "MONTH", "CRI", "CUB", None, "PAN", 9, False, "M", "30-44")
    legs = {
        (a.period, a.key): a.number.count for a in resolve([*week, month], ("previous_country",))
    }
    assert legs == {("2024-W05", ("PAN",)): 7, ("2024-02", ("PAN",)): 9}
    nationalities = {
        (a.period, a.key): a.number.count for a in resolve([*week, month], ("nationality",))
    }
    assert nationalities == {("2024-W05", ("CUB",)): 30}
