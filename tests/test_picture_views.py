"""The regional picture's views and exports on a fixed federation (no Kafka):
numbers checked against the flow cells independently, audiences, retention,
embargo, purge, alerts, SDMX-CSV and golden files of every view and format."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import sqlite3
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, getcontext
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from node.cli import main
from node.config import Home
from node.demo.synth import surge_plan
from node.errors import ConfigError
from node.report.alerts import AlertMethod, alerts, poisson_log_upper_tail, poisson_upper_tail
from node.report.audience import Scope, admits, audience_name, purpose_name
from node.report.flows import country_total_rows, render_flow_tables, rows_of
from node.report.html import report_html
from node.report.reference import rows_csv
from node.report.regional import FlowCell, admitted_cells, regional_rows
from node.report.sdmx import COLUMNS, DATAFLOW, flows_sdmx_csv
from node.report.views import STAT_VIEWS, render_view, view_csv_rows, view_data
from node.store.picture import PictureStore
from tests.picture_data import WEEKS, build_picture

GOLDEN = Path(__file__).parent / "golden" / "picture"
#: A fixed "now" for golden files: inside every event's retention, after none's embargo.
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return build_picture(tmp_path_factory.mktemp("picture"))


def _cli(agg: Home, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(agg.path), "report", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _cells(agg: Home, audience: str = "TS", now: datetime = NOW) -> list[FlowCell]:
    with PictureStore(agg.store_path) as store:
        return admitted_cells(store, Scope(audience, None, now))


# -- numbers --------------------------------------------------------------------------


_DIMS = ("nationality", "sex", "age_band", "previous_country")


def _value(row: dict[str, object], dim: str) -> str | None:
    """A stored cell's value of a dimension: a code, "_T", or None (not published);
    a nationality published only as its region reads "[region]"."""
    if dim == "nationality":
        nat, region = row["nationality"], row["nationality_region"]
        if "_T" in (nat, region):
            return "_T"
        return str(nat) if nat else (f"[{region}]" if region else None)
    v = row[dim]
    return None if v is None else str(v)


def _month_of_week(period: str) -> str:
    """An ISO week lies in the month of its Thursday."""
    year, week = (int(x) for x in period.split("-W"))
    thursday = date.fromisocalendar(year, week, 4)
    return f"{thursday.year}-{thursday.month:02d}"


def _by_the_rule(
    raw: list[dict[str, object]], keep: tuple[str, ...]
) -> dict[tuple[str, str, tuple[str | None, ...]], tuple[int, bool]]:
    """(period, country, key) -> (count, from the table that keeps exactly
    ``keep``), from the stored cells by docs/picture.md: per country and period
    the table with exactly those dimensions if published, else the sums of the
    least detailed finer table; a coarse period's row left out where a week
    inside it answers the same row from another table (whose cell holds the
    month cell's encounters of that week: no encounter counted twice; the
    detail's week and month cells are disjoint, docs/policies.md)."""
    groups: dict[tuple[str, str], dict[frozenset[str], list[dict[str, object]]]] = {}
    for r in raw:
        shape = frozenset(d for d in _DIMS if _value(r, d) not in (None, "_T"))
        groups.setdefault((str(r["period"]), str(r["reporting_country"])), {}).setdefault(
            shape, []
        ).append(r)
    want = frozenset(keep)
    out: dict[tuple[str, str, tuple[str | None, ...]], tuple[int, bool]] = {}
    shapes: dict[tuple[str, str, tuple[str | None, ...]], frozenset[str]] = {}
    for (period, country), tables in groups.items():
        if want in tables:
            shape, exact = want, True
        else:
            finer = sorted((s for s in tables if want < s), key=len)
            if not finer:
                continue
            least = [s for s in finer if len(s) == len(finer[0])]
            assert len(least) == 1, (period, country, least)  # one candidate here
            shape, exact = least[0], False
        sums: Counter[tuple[str | None, ...]] = Counter()
        for r in tables[shape]:
            sums[tuple(_value(r, d) for d in keep)] += int(str(r["count"]))
        for key, n in sums.items():
            out[(period, country, key)] = (n, exact)
            shapes[(period, country, key)] = shape
    overlapped = {(_month_of_week(p), c, k, s) for (p, c, k), s in shapes.items() if "-W" in p}
    return {
        (p, c, k): v
        for (p, c, k), v in out.items()
        if "-W" in p
        or not any((p, c, k, s) in overlapped for s in set(shapes.values()) - {shapes[(p, c, k)]})
    }


def test_regional_totals_are_the_sum_of_the_country_counts_shown(picture: Home) -> None:
    with PictureStore(picture.store_path) as store:
        raw = store.flow_cells()
    rule = _by_the_rule(raw, ("nationality",))
    expected = {(p, k[0], c): n for (p, c, k), (n, _) in rule.items()}
    countries, rows = regional_rows(_cells(picture))
    assert countries == ["PAN", "CRI", "GTM", "MEX"]
    seen: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        assert row.total == sum(row.by_country.values())
        for country, n in row.by_country.items():
            seen[(row.period, row.nationality, country)] = n
            # A number from the week x nationality table is that published cell.
            if rule[(row.period, country, (row.nationality,))][1]:
                assert row.numbers[country].status == "exact"
    assert seen == expected
    # Countries with a week x nationality table give its cells, never a sum of
    # the detail below them; GTM, publishing regions only, gives its region table.
    assert all(exact for (p, _, _), (_, exact) in rule.items() if "-W" in p)
    assert {k[0] for (_, c, k) in rule if c == "GTM"} <= {
        f"[{r['nationality_region']}]" for r in raw if r["reporting_country"] == "GTM"
    }
    # CRI's month cells (its detail coarsened to a month) stay only for
    # nationalities no week of that month answers.
    months = [(p, k) for (p, c, k) in rule if c == "CRI" and "-W" not in p]
    assert months and not any(
        ("-W" in p and _month_of_week(p) == m and k == key)
        for (m, key) in months
        for (p, c, k) in rule
        if c == "CRI"
    )


def test_trends_change_and_origin_groups(picture: Home) -> None:
    with PictureStore(picture.store_path) as store:
        data = view_data("trends", store, Scope("TS", None, NOW))
        raw = [r for r in store.flow_cells() if "-W" in r["period"]]
    region = [r for r in data["totals"] if r["reporting_country"] == "_T"]
    assert len(region) == WEEKS
    assert region[0]["previous"] is None
    for before, now in itertools.pairwise(region):
        assert now["change"] == now["count"] - before["count"] == now["count"] - now["previous"]
    # Country x week: every member here publishes its national weekly total,
    # so each country's number is that one cell, exact, and the region adds them.
    totals = _by_the_rule(raw, ())
    assert all(exact for _, exact in totals.values())
    for row in data["totals"]:
        if row["reporting_country"] != "_T":
            assert (row["count"], row["status"]) == (
                totals[(row["period"], row["reporting_country"], ())][0],
                "exact",
            )
    latest = region[-1]["period"]
    shown = {c: n for (p, c, _), (n, _) in totals.items() if p == latest}
    assert region[-1]["count"] == sum(shown.values())
    assert (
        region[-1]["countries"] == ["PAN", "CRI", "GTM", "MEX"] and region[-1]["status"] == "exact"
    )
    top = data["top_nationalities"]
    assert top[0]["nationality"] == "CHN"  # the planted surge leads the last week
    assert [t["count"] for t in top] == sorted((t["count"] for t in top), reverse=True)
    by_nat = _by_the_rule(raw, ("nationality",))
    last = data["origins"][-1]
    assert last["caribbean"] == sum(
        n for (p, _, k), (n, _) in by_nat.items() if p == latest and k[0] in ("CUB", "HTI")
    )
    # The groups add the nationality answers (each a cell of a week x
    # nationality table, exact), except GTM's [Caribbean], which holds Cuba and
    # Haiti with others. They miss the suppressed nationality cells (the
    # national totals are larger) and that region: so they are lower bounds.
    groups = last["extracontinental"] + last["caribbean"] + last["other"]
    assert groups == sum(
        n for (p, _, k), (n, _) in by_nat.items() if p == latest and k[0] != "[Caribbean]"
    )
    caribbean_region = by_nat[(latest, "GTM", ("[Caribbean]",))][0]
    assert caribbean_region > 0 and groups + caribbean_region < region[-1]["count"]
    assert {last[f"{g}_status"] for g in ("extracontinental", "caribbean", "other")} == {
        "lower-bound"
    }


def test_route_legs_sum_the_previous_country_cells(picture: Home) -> None:
    with PictureStore(picture.store_path) as store:
        data = view_data("corridors", store, Scope("TS", None, NOW))
        raw = store.flow_cells()
    legs = {(g["from"], g["to"]): g["count"] for g in data["legs"]}
    # No member publishes a table keeping only the previous country: each leg
    # is the sum of the detail cells (a lower bound), never of a table's _T
    # cells, and a CRI month cell adds to its weeks (the detail never overlaps).
    rule = _by_the_rule(raw, ("previous_country",))
    expected: Counter[tuple[str, str]] = Counter()
    for (_, country, (previous,)), (n, exact) in rule.items():
        assert not exact
        if previous is not None:
            expected[(str(previous), country)] += n
    assert legs == dict(expected) and ("COL", "PAN") in legs
    assert "_T" not in {a for a, _ in legs}
    detail = sum(
        int(r["count"])
        for r in raw
        if r["reporting_country"] == "CRI" and r["previous_country"] not in (None, "_T")
    )
    assert sum(n for (_, b), n in legs.items() if b == "CRI") == detail
    assert {g["status"] for g in data["legs"]} == {"lower-bound"}
    # No member here links records: routes are stated as absent, not invented.
    assert data["records"] == 0 and data["routes"] == [] and data["k"] == 10


def test_routes_need_k_people(picture: Home, tmp_path: Path) -> None:
    """Linked encounter records: a route is shown only when k people share it."""
    db = tmp_path / "linked.db"
    with PictureStore(db) as store, store.transaction() as conn:
        trail = [("PAN", "2024-W01"), ("CRI", "2024-W02"), ("MEX", "2024-W04")]
        for person in range(12):
            path = trail if person < 10 else trail[:2]
            for i, (country, week) in enumerate(path):
                event = f"e-{person}-{i}"
                conn.execute(
                    "INSERT INTO encounter_view VALUES (?,?,?,?,?,?,?,?)",
                    (
                        f"EncounterRecord|{country}|{event}",
                        country,
                        f"tok{person}",
                        week,
                        "CHN",
                        json.dumps(
                            {
                                "reporting_country": country,
                                "encounter_period": week,
                                "linkage_token": f"tok{person}",
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
        shown = view_data("corridors", store, Scope("TS", None, NOW), k=10)
        strict = view_data("corridors", store, Scope("TS", None, NOW), k=11)
        public = view_data("corridors", store, Scope("public", None, NOW), k=2)
    assert shown["routes"] == [{"route": ["PAN", "CRI", "MEX"], "people": 10}]
    assert shown["people_in_hidden_routes"] == 2  # PAN → CRI, only two people
    assert strict["routes"] == [] and strict["people_in_hidden_routes"] == 12
    assert public["records"] == 0  # encounter records are for the Secretariat only


# -- alerts ---------------------------------------------------------------------------


def test_poisson_upper_tail_matches_the_closed_form() -> None:
    assert poisson_upper_tail(5, 1.0) == pytest.approx(0.00365984, rel=1e-5)
    assert poisson_upper_tail(0, 3.0) == 1.0
    assert poisson_upper_tail(2, 2.0) == pytest.approx(1 - 3 * 2.718281828**-2, rel=1e-6)
    # Thousands a week: no overflow, and a 10 % rise on 2000 is far in the tail.
    assert 0 < poisson_upper_tail(2200, 2000.0) < 1e-5


def _exact_log10_tail(x: int, mean: int | Decimal) -> float:
    """log10 P(X ≥ x), summed term by term in 60-digit decimals (independent)."""
    getcontext().prec = 60
    m = Decimal(mean)
    if x == 0:
        return 0.0
    term = (-m).exp() * m**x / Decimal(math.factorial(x))
    total, k = Decimal(0), x
    while term > total * Decimal("1e-40"):
        total += term
        k += 1
        term = term * m / k
    return float(total.log10())


@pytest.mark.parametrize(("x", "mean"), [(30, 10), (300, 50), (2801, 1077), (1200, 1000)])
def test_poisson_log_tail_against_exact_decimals(x: int, mean: int) -> None:
    got = poisson_log_upper_tail(x, float(mean)) / math.log(10)
    assert got == pytest.approx(_exact_log10_tail(x, mean), abs=1e-6)


def test_alerts_find_the_planted_surge(picture: Home) -> None:
    """The alerts are the documented method applied to the series computed from
    the stored cells by the documented rule. Since the members publish week x
    nationality tables, a nationality's weekly number is its exact total, and
    the method also flags what the synthetic data really holds besides the
    planted CHN surge: GTM, which publishes regions only, shows that surge as
    [Eastern Asia]; IND (72 against a mean of 46.7, exact numbers) and GTM's
    [Caribbean] (119 against 64.3, the raw records agree) rise by more than
    half in the last week with a Poisson tail below 0.001."""
    plan = surge_plan("PAN", WEEKS)
    with PictureStore(picture.store_path) as store:
        data = view_data("alerts", store, Scope("TS", None, NOW))
        raw = [r for r in store.flow_cells() if "-W" in r["period"]]
    weeks = sorted({str(r["period"]) for r in raw})
    assert data["period"] == weeks[-1] == "2024-W12"
    assert data["countries"] == ["PAN", "CRI", "GTM", "MEX"]  # every week from each
    series: dict[tuple[str, str], Counter[str]] = {}
    for kind, keep in (("nationality", ("nationality",)), ("corridor", ("previous_country",))):
        for (period, country, (value,)), (n, _) in _by_the_rule(raw, keep).items():
            if value is None:
                continue
            name = str(value) if kind == "nationality" else f"{value}>{country}"
            series.setdefault((kind, name), Counter())[period] += n
    expected = set()
    for (kind, name), counts in series.items():
        x = counts[weeks[-1]]
        base = sum(counts[w] for w in weeks[-7:-1])
        mean = max(Decimal(base) / 6, Decimal(1))
        if x >= 20 and x >= Decimal("1.5") * mean and _exact_log10_tail(x, mean) < -3:
            expected.add((kind, name))
    found = {(a["kind"], a["series"]) for a in data["alerts"]}
    assert found == expected
    nationalities = [a["series"] for a in data["alerts"] if a["kind"] == "nationality"]
    assert nationalities[0] == plan.nationality == "CHN"  # the strongest of them
    assert "[Eastern Asia]" in nationalities  # the same surge in GTM's regions
    surge = data["alerts"][0]
    assert surge["series"] == "CHN" and surge["status"] == "exact"
    assert surge["ratio"] >= 1.5 and surge["count"] >= 20 and surge["p_value"] < 0.001
    assert surge["count"] == series[("nationality", "CHN")][weeks[-1]]


def _series(counts: list[int]) -> list[FlowCell]:
    return [
        FlowCell(f"2024-W{i + 1:02d}", "ISO_WEEK", "PAN", "HTI", None, "COL", n, False)
        for i, n in enumerate(counts)
    ]


def test_alert_method_thresholds() -> None:
    flat = alerts(_series([100, 104, 97, 101, 99, 102, 106]))
    assert flat["alerts"] == []
    jump = alerts(_series([100, 104, 97, 101, 99, 102, 180]))
    assert {a["kind"] for a in jump["alerts"]} == {"nationality", "corridor"}
    # Below the minimum count nothing alerts, however large the ratio.
    assert alerts(_series([1, 0, 1, 0, 1, 0, 15]))["alerts"] == []
    assert alerts(_series([1, 0, 1, 0, 1, 0, 15]), AlertMethod(min_count=10))["alerts"]
    # 1.3× a large baseline is significant for Poisson but under the ratio.
    assert alerts(_series([1000] * 6 + [1300]))["alerts"] == []


def test_a_country_missing_weeks_does_not_fake_a_surge() -> None:
    cells = [
        *_series([100] * 7),
        FlowCell("2024-W07", "ISO_WEEK", "GTM", "CHN", None, "HND", 90, False),
        FlowCell("2024-02", "MONTH", "GTM", "CHN", None, "HND", 12, False),
    ]
    out = alerts(cells)
    assert out["alerts"] == [] and out["countries_left_out"] == ["GTM"]


# -- audiences, retention, embargo, purge ---------------------------------------------


def test_audience_rules() -> None:
    use = {
        "audiences": ("TS", "members", "IOM"),
        "purposes": ("statistics",),
        "retain_until": NOW.date() + timedelta(days=1),
        "embargo_until": None,
        "purged": False,
    }
    assert admits(use, "IOM", "statistics", NOW)
    assert admits(use, "PAN", "statistics", NOW)  # a member, through "members"
    assert not admits(use, "BRA", "statistics", NOW)  # a guest is not a member
    assert not admits(use, "public", "statistics", NOW)
    assert not admits(use, "UNHCR", "statistics", NOW)
    assert not admits(use, "IOM", "research", NOW)  # purpose not given
    assert not admits(use, "IOM", "statistics", NOW + timedelta(days=2))  # expired
    assert admits({**use, "audiences": ("public",)}, "UNHCR", "statistics", NOW)
    embargoed = {**use, "embargo_until": NOW + timedelta(hours=1)}
    assert not admits(embargoed, "TS", "statistics", NOW)
    assert admits(embargoed, "TS", "statistics", NOW + timedelta(hours=2))
    assert admits(None, "TS", "statistics", NOW) and not admits(None, "IOM", "statistics", NOW)
    assert audience_name("Public") == "public" and audience_name("iom") == "IOM"
    with pytest.raises(ConfigError, match="unknown audience 'IMO'"):
        audience_name("IMO")
    assert purpose_name("research") == "research" and purpose_name(None) is None
    with pytest.raises(ConfigError, match="unknown purpose 'stats'"):
        purpose_name("stats")


def test_report_refuses_an_unknown_audience(picture: Home) -> None:
    out = CliRunner().invoke(main, ["--home", str(picture.path), "report", "--audience", "IMO"])
    assert out.exit_code == 1 and "unknown audience 'IMO'" in out.output


def test_one_event_in_the_iom_export_and_not_in_the_public_one(picture: Home) -> None:
    """Costa Rica's flow statistics are for TS, members and IOM (policies/CRI.yaml):
    its cells are in the IOM export and absent from the public one."""
    with PictureStore(picture.store_path) as store:
        uses = store.uses()
        # A cell of CRI's week x nationality table: the flows' answer for its row.
        cri = next(
            c
            for c in store.flow_cells()
            if c["reporting_country"] == "CRI"
            and c["nationality"] not in (None, "_T")
            and c["sex"] == "_T"
        )
    use = uses[cri["event_id"]]
    assert "IOM" in use["audiences"] and "public" not in use["audiences"]
    key = (cri["period"], "CRI", cri["nationality"])

    def exported(audience: str) -> set[tuple[str, str, str]]:
        doc = json.loads(_cli(picture, "--format", "json", "--audience", audience))
        assert doc["audience"] == audience
        return {(r["period"], r["reporting_country"], r["nationality"]) for r in doc["flows"]}

    iom, public = exported("IOM"), exported("public")
    assert key in iom and key not in public
    assert {k[1] for k in iom} == {"CRI"}  # the others do not name IOM
    assert public == set()
    # Nothing released to the public: a clear refusal, not a header-only file.
    refused = CliRunner().invoke(
        main,
        [
            "--home",
            str(picture.path),
            "report",
            "regional",
            "--format",
            "sdmx",
            "--audience",
            "public",
        ],
    )
    assert refused.exit_code == 1
    assert "no flow statistics were released to audience 'public'" in refused.output
    assert ",".join(COLUMNS) not in refused.output
    # Legislation is public: the public legislation matrix still has every member.
    rows = json.loads(_cli(picture, "legislation", "--format", "json", "--audience", "public"))
    assert {r["country"] for r in rows["rows"]} == {"PAN", "CRI", "GTM", "MEX"}


def test_expired_events_are_never_exported_and_purge_removes_them(
    picture: Home, tmp_path: Path
) -> None:
    db = tmp_path / "aggregator.db"
    db.write_bytes(picture.store_path.read_bytes())
    with PictureStore(db) as store:
        uses = store.uses()
        flows = {c["event_id"] for c in store.flow_cells()}
        retain = min(uses[e]["retain_until"] for e in flows)
    after = datetime.combine(retain + timedelta(days=1), datetime.min.time(), UTC)
    with PictureStore(db) as store:
        before_cells = len(store.flow_cells())
        expiring = {e for e, u in uses.items() if u["retain_until"] <= retain}
        assert expiring and before_cells
        # Past retain_until: not exported even before anyone purges.
        kept = admitted_cells(store, Scope("TS", None, after))
        assert len(kept) < before_cells
        removed = store.purge_expired(after.date())
        assert sum(removed.values()) == len(expiring)
        assert not any(c["event_id"] in expiring for c in store.flow_cells())
        assert store.purge_expired(after.date()) == {}
    conn = sqlite3.connect(db)
    try:
        bodies = conn.execute(
            f"SELECT count(*) FROM event_revision WHERE body IS NOT NULL AND event_id IN "
            f"({','.join('?' * len(expiring))})",
            sorted(expiring),
        ).fetchone()[0]
        metadata = conn.execute("SELECT count(*) FROM received_event").fetchone()[0]
    finally:
        conn.close()
    assert bodies == 0 and metadata == len(uses)  # digests stay: a replay stays a duplicate


def test_purge_command(picture: Home, tmp_path: Path) -> None:
    home = tmp_path / "ts"
    home.mkdir()
    for f in picture.path.iterdir():
        if f.is_file():
            (home / f.name).write_bytes(f.read_bytes())
    runner = CliRunner()
    out = runner.invoke(main, ["--home", str(home), "purge"])
    assert out.exit_code == 0 and out.output.startswith("purged 0 events"), out.output
    out = runner.invoke(main, ["--home", str(home), "purge", "--as-of", "2099-01-01"])
    assert out.exit_code == 0, out.output
    assert re.match(r"purged [1-9]\d* events past retain_until \(.*FlowStatistic", out.output)
    doc = json.loads(
        runner.invoke(main, ["--home", str(home), "report", "--format", "json"]).output
    )
    assert doc["flows"] == []


def test_embargoed_events_wait(picture: Home, tmp_path: Path) -> None:
    db = tmp_path / "aggregator.db"
    db.write_bytes(picture.store_path.read_bytes())
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE event_use SET embargo_until = ? WHERE event_id IN (SELECT event_id FROM "
            "flow_cell WHERE reporting_country = 'MEX')",
            ((NOW + timedelta(days=7)).isoformat(),),
        )
    conn.close()
    with PictureStore(db) as store:
        now = {c.country for c in admitted_cells(store, Scope("TS", None, NOW))}
        later = {
            c.country for c in admitted_cells(store, Scope("TS", None, NOW + timedelta(days=8)))
        }
    assert "MEX" not in now and "MEX" in later


# -- SDMX-CSV 2.0 ---------------------------------------------------------------------


def test_sdmx_csv_follows_the_specification_and_loads_in_pysdmx(picture: Home) -> None:
    from pysdmx.io.csv.sdmx20.reader import read

    text = flows_sdmx_csv(_cells(picture), "TS")
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    # SDMX-CSV 2.0: STRUCTURE, STRUCTURE_ID, ACTION first; STRUCTURE one of
    # dataflow|dataStructure|dataProvision; STRUCTURE_ID an agency:id(version) URN;
    # ACTION one of I, A, R, D; components each once.
    assert header[:3] == ["STRUCTURE", "STRUCTURE_ID", "ACTION"]
    assert len(header) == len(set(header))
    assert all(r["STRUCTURE"] == "dataflow" and r["STRUCTURE_ID"] == DATAFLOW for r in rows)
    assert re.fullmatch(r"[A-Za-z][\w.-]*:[A-Za-z][\w-]*\(\d+\.\d+\.\d+\)", DATAFLOW)
    assert {r["ACTION"] for r in rows} == {"I"}
    assert {r["OBS_STATUS"] for r in rows} <= {"A", "E"}
    assert {r["CONF_STATUS"] for r in rows} == {"F"}
    # No dimension cell is ever empty: _Z where a dimension does not apply.
    dims = ("REF_AREA", "CITIZENSHIP", "CITIZENSHIP_REGION", "TIME_PERIOD")
    assert all(r[d] for r in rows for d in dims)
    assert {r["CITIZENSHIP_REGION"] for r in rows if r["CITIZENSHIP"] != "_Z"} == {"_Z"}
    keys = [tuple(r[d] for d in dims) for r in rows]
    assert len(keys) == len(set(keys))  # one observation per series key and period
    assert all(re.fullmatch(r"\d{4}-(W\d{2}|\d{2}|Q[1-4])", r["TIME_PERIOD"]) for r in rows)
    # No encounter counted twice: a country's nationality observations of a
    # week (and the months its detail was coarsened to, over their weeks) add
    # up to no more than its national totals (CITIZENSHIP _T).
    national: Counter[tuple[str, str]] = Counter()
    shown: Counter[tuple[str, str]] = Counter()
    for r in rows:
        if r["REF_AREA"] == "_T":
            continue
        month = (
            r["TIME_PERIOD"] if "-W" not in r["TIME_PERIOD"] else _month_of_week(r["TIME_PERIOD"])
        )
        if "_T" in (r["CITIZENSHIP"], r["CITIZENSHIP_REGION"]):
            national[(r["REF_AREA"], month)] += int(r["OBS_VALUE"])
        else:
            shown[(r["REF_AREA"], month)] += int(r["OBS_VALUE"])
    assert national and all(shown[k] <= national[k] for k in shown), [
        (k, shown[k], national[k]) for k in shown if shown[k] > national[k]
    ]
    totals: Counter[tuple[str, str]] = Counter()
    members: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        if r["REF_AREA"] != "_T":
            key = (r["CITIZENSHIP"] + r["CITIZENSHIP_REGION"], r["TIME_PERIOD"])
            totals[key] += int(r["OBS_VALUE"])
            members.setdefault(key, set()).add(r["REF_AREA"])
    for r in rows:
        if r["REF_AREA"] == "_T":
            key = (r["CITIZENSHIP"] + r["CITIZENSHIP_REGION"], r["TIME_PERIOD"])
            assert int(r["OBS_VALUE"]) == totals[key]
            assert set(r["COUNTRIES"].split()) == members[key]
    (dataset,) = read(text)
    assert dataset.short_urn == "Dataflow=RCM:DF_EXTRAREGIONAL_FLOWS(1.0.0)"
    assert len(dataset.data) == len(rows)
    assert set(dataset.data.columns) == set(COLUMNS) - {"STRUCTURE", "STRUCTURE_ID", "ACTION"}
    # Loading it with its structure, and writing it back: tests/test_sdmx_structure.py.


# -- golden files ----------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = re.sub(r'"generated_at": "[^"]+"', '"generated_at": "-"', text)
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    text = _normalise(text)
    if os.environ.get("CORREDOR_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with CORREDOR_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("view", STAT_VIEWS)
def test_golden_statistical_views(picture: Home, view: str) -> None:
    with PictureStore(picture.store_path) as store:
        data = view_data(view, store, Scope("TS", None, NOW), last=4)
    _golden(f"{view}.json", json.dumps(data, indent=2, default=str) + "\n")
    _golden(f"{view}.csv", rows_csv(view_csv_rows(view, data)))
    console = Console(record=True, width=120, color_system=None)
    render_view(console, view, data)
    _golden(f"{view}.txt", console.export_text())


def test_golden_flows_sdmx_and_html(picture: Home) -> None:
    cells = _cells(picture)
    console = Console(record=True, width=120, color_system=None)
    flows = rows_of(cells)
    render_flow_tables(console, flows, last=2, totals=country_total_rows(cells, flows))
    _golden("flows.txt", console.export_text())
    # Without the countries' totals, a column's sum is only a lower bound.
    bare = Console(record=True, width=120, color_system=None)
    render_flow_tables(bare, flows, last=1)
    (total,) = [line for line in bare.export_text().splitlines() if "Total" in line]
    assert re.findall(r"[≥·\d]+", total)[:4] == [
        f"≥{sum(r.count for r in flows if r.period == '2024-W12' and r.reporting_country == c)}"
        for c in ("PAN", "CRI", "GTM", "MEX")
    ]
    _golden("flows.sdmx.csv", flows_sdmx_csv(cells, "TS"))
    _golden("flows-public.sdmx.csv", flows_sdmx_csv(_cells(picture, "public"), "public"))
    with PictureStore(picture.store_path) as store:
        _golden("report.html", report_html(store, Scope("TS", None, NOW)))
        _golden("report-iom.html", report_html(store, Scope("IOM", None, NOW)))


def test_flows_json_keeps_its_documented_fields(picture: Home) -> None:
    doc = json.loads(_cli(picture, "--format", "json"))
    assert {"generated_at", "flows", "events_applied", "rejected", "rejected_by_reason"} <= set(doc)
    # The fields scripts read stay; issue 16 adds each number's status.
    assert set(doc["flows"][0]) == {
        "period",
        "reporting_country",
        "nationality",
        "nationality_region",
        "count",
        "status",
        "ci95",
        "protected",
    }
    assert doc["unit"] == "encounters"
    csv_out = _cli(picture, "--format", "csv")
    assert (
        csv_out.splitlines()[0] == "period,reporting_country,nationality,"
        "nationality_region,count,status,ci95,protected,unit"
    )
    for view in STAT_VIEWS:
        assert json.loads(_cli(picture, view, "--format", "json"))["view"] == view
        assert _cli(picture, view, "--format", "csv").count("\n") > 1
        assert _cli(picture, view)


def test_report_html_to_a_file(picture: Home, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    _cli(picture, "--format", "html", "-o", str(out))
    text = out.read_text(encoding="utf-8")
    assert text.count("<svg") == 3 and "Legislation matrix" in text
    # Self-contained: nothing is fetched from anywhere.
    # (url(#id) names an element of the same document: the arrowhead marker.)
    assert not re.search(r"(src|href)\s*=|@import|url\((?!#)|<script|<link", text, re.I)


def test_the_html_report_renders_in_headless_chromium(picture: Home, tmp_path: Path) -> None:
    from tests.browser import assert_report_rendered

    report = tmp_path / "report.html"
    _cli(picture, "--format", "html", "-o", str(report))
    shot = Path(os.environ.get("CORREDOR_SCREENSHOT_DIR", tmp_path)) / "report-fixture.png"
    page = assert_report_rendered(report, shot)
    assert page.count(r'class="supp"') > 0  # suppressed values are marked


# -- the picture published back to the members ------------------------------------------


def test_members_get_the_picture_back_signed_by_its_producers(tmp_path: Path) -> None:
    """The Secretariat queues, unchanged, the events every member may see; a
    member's node verifies and applies them, and its report equals the
    Secretariat's export for that member."""
    from node.aggregator.checks import APPENDED_AT_HEADER
    from node.aggregator.picture_sync import apply_picture, picture_path
    from node.config import load_home
    from node.federation import drafts, trust
    from node.transport.base import Message

    agg = build_picture(tmp_path, {"PAN": 1500, "CRI": 1200})
    pan = load_home(tmp_path / "pan")
    trust.accept_manifest(pan, drafts.sign_draft(agg))
    with PictureStore(agg.store_path) as store:
        pending = store.pending_picture(datetime.now(UTC))
        uses = store.uses()
    conn = sqlite3.connect(agg.store_path)
    try:
        queued = {e for (e,) in conn.execute("SELECT event_id FROM picture_outbox")}
    finally:
        conn.close()
    for_members = {e for e, u in uses.items() if {"members", "public"} & set(u["audiences"])}
    assert queued == for_members and len(pending) == len(queued) > 0
    # As the Secretariat publishes them: the shared topic's append time in a header.
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    messages = [
        Message(
            "picture",
            0,
            i,
            subject.encode(),
            value,
            now_ms,
            True,
            ((APPENDED_AT_HEADER, str(at).encode()),),
        )
        for i, (_, subject, value, at) in enumerate(pending)
    ]
    stats = apply_picture(pan, messages)
    assert stats.rejected_total == 0 and stats.applied == len(pending)
    assert apply_picture(pan, messages).duplicates == len(pending)  # idempotent
    mine = json.loads(_cli(pan, "--format", "json", "--offline"))
    ts = json.loads(_cli(agg, "--format", "json", "--audience", "PAN"))
    assert mine["audience"] == "PAN" and mine["flows"] == ts["flows"]
    assert {r["reporting_country"] for r in mine["flows"]} == {"PAN", "CRI"}
    legislation = json.loads(_cli(pan, "legislation", "--format", "json", "--offline"))
    assert {r["country"] for r in legislation["rows"]} == {"PAN", "CRI"}
    # A forged picture message (altered after signing) is set aside, not applied.
    forged = bytearray(pending[0][2])
    forged[-1] ^= 0x01
    bad = apply_picture(pan, [Message("picture", 0, 99, b"x", bytes(forged), now_ms)])
    assert bad.applied == 0 and bad.rejected_total == 1
    assert picture_path(pan) == pan.path / "picture.db"


@pytest.mark.parametrize("view", ["legislation", "consulates", "health", "focal-points"])
def test_golden_reference_views(picture: Home, view: str) -> None:
    from node.report.reference import VIEWS, ViewFilter
    from node.report.views import admitted_view_rows

    with PictureStore(picture.store_path) as store:
        rows = admitted_view_rows(store, view, Scope("TS", None, NOW), ViewFilter(as_of=NOW.date()))
        public = admitted_view_rows(
            store, view, Scope("public", None, NOW), ViewFilter(as_of=NOW.date())
        )
    assert rows
    _golden(f"{view}.json", json.dumps(rows, indent=2, default=str) + "\n")
    _golden(f"{view}.csv", rows_csv(rows))
    console = Console(record=True, width=160, color_system=None)
    VIEWS[view].render(console, rows)
    _golden(f"{view}.txt", console.export_text())
    # Only legislation is for the public in the sample policies.
    assert bool(public) == (view == "legislation")


def test_the_picture_topic_waits_for_an_embargo(picture: Home, tmp_path: Path) -> None:
    db = tmp_path / "aggregator.db"
    db.write_bytes(picture.store_path.read_bytes())
    conn = sqlite3.connect(db)
    with conn:
        (event,) = conn.execute("SELECT event_id FROM picture_outbox LIMIT 1").fetchone()
        conn.execute(
            "UPDATE event_use SET embargo_until = ? WHERE event_id = ?",
            ((NOW + timedelta(days=3)).isoformat(timespec="seconds"), event),
        )
        waiting = conn.execute(
            "SELECT seq FROM picture_outbox WHERE event_id = ?", (event,)
        ).fetchone()[0]
    conn.close()
    with PictureStore(db) as store:
        before = {seq for seq, _, _, _ in store.pending_picture(NOW)}
        after = {seq for seq, _, _, _ in store.pending_picture(NOW + timedelta(days=4))}
        assert waiting not in before and after == before | {waiting}
        store.mark_picture_published(sorted(after))
        assert store.pending_picture(NOW + timedelta(days=4)) == []
    # Each acknowledged picture event is a 'published' entry in the audit chain.
    from node.store import audit_check

    published = [e for e in audit_check.read_entries(db) if e.entry == "published"]
    assert len(published) == len(after)
    assert {e.event_id for e in published} >= {event}
    assert audit_check.verify(db).ok


def test_routes_from_linked_encounter_records_end_to_end(tmp_path: Path) -> None:
    """Mexico (under a policy that, like the United States', sends linked
    records to the Secretariat) meets 15 people who later reach the United
    States: the aggregator sees the route MEX → USA once k ≤ 15, and only the
    Secretariat does."""
    import yaml

    from node.config import policies_dir
    from node.crypto.linkage import new_linkage_key, save_linkage_key
    from node.demo.synth import generate_encounters, write_csv
    from node.home import event_codec, regional_floor
    from node.member.drain import drain_outbox
    from node.member.intake import ingest
    from node.member.member_home import home_policy, init_member
    from node.member.staging import stage_publication
    from node.store.node_store import NodeStore
    from node.transport.memory import MemorySink, MemorySource, MemoryTopic
    from tests.factories import START, aggregator_for, records_only_policy

    usa_policy = yaml.safe_load((policies_dir() / "USA.yaml").read_text())
    mex_policy = yaml.safe_load((policies_dir() / "MEX.yaml").read_text())
    mex_policy["exchanges"]["encounter_records"] = usa_policy["exchanges"]["encounter_records"]
    # TS off the flows' audiences: records of flow cells not published alone
    # would stay home (tests/test_sdc_records.py)
    mex_policy["exchanges"]["flow_statistics"]["audiences"] = ["members", "UNHCR"]
    mex_policy["exchanges"]["encounter_records"]["k_anonymity"] = 1  # every record: routes
    mex_file = tmp_path / "MEX-linking.yaml"
    mex_file.write_text(yaml.safe_dump(mex_policy))
    usa = init_member(tmp_path / "usa", "USA", policy=records_only_policy(tmp_path))
    mex = init_member(tmp_path / "mex", "MEX", policy=mex_file)
    regional = new_linkage_key()
    for home in (usa, mex):
        save_linkage_key(home.linkage_key_path, regional, None)
    later = generate_encounters("USA", 40, seed=5, start=START + timedelta(days=21), weeks=2)
    earlier = generate_encounters("MEX", 15, seed=6, start=START, weeks=2)
    for person, row in zip(later, earlier, strict=False):  # the same 15 people, met first in MEX
        for field in (
            "document_number",
            "family_name",
            "given_names",
            "date_of_birth",
            "nationality",
            "sex",
        ):
            row[field] = person[field]
    topic = MemoryTopic()
    for home, rows in ((mex, earlier), (usa, later)):
        write_csv(rows, tmp_path / f"{home.country}.csv")
        assert ingest(home, tmp_path / f"{home.country}.csv").stored == len(rows)
        with NodeStore(home.store_path) as store:
            stage_publication(home, store, home_policy(home))
            drain_outbox(store, MemorySink(topic))
    agg = aggregator_for(tmp_path, [usa, mex])
    with PictureStore(agg.store_path) as store:
        from node.aggregator.apply import Aggregator
        from node.federation import trust

        stats = Aggregator(
            store, event_codec(), trust.key_directory(agg), floor=regional_floor()
        ).apply_batch(MemorySource(topic).poll_batch(0, 10**9))
        assert stats.rejected_total == 0
        shown = view_data("corridors", store, Scope("TS", None, NOW), k=15)
        hidden = view_data("corridors", store, Scope("TS", None, NOW), k=16)
        outside = view_data("corridors", store, Scope("UNHCR", None, NOW), k=2)
    assert shown["records"] == 55 and shown["people_linked"] == 40
    assert shown["routes"] == [{"route": ["MEX", "USA"], "people": 15}]
    assert hidden["routes"] == [] and hidden["people_in_hidden_routes"] == 15
    assert outside["records"] == 0


def test_purge_tombstones_the_purged_subjects_on_the_picture_topic(
    picture: Home, tmp_path: Path
) -> None:
    """A purged event that was the newest of its subject on the picture topic
    gets a tombstone (compaction then drops it)."""
    db = tmp_path / "aggregator.db"
    db.write_bytes(picture.store_path.read_bytes())
    with PictureStore(db) as store:
        pending = store.pending_picture(NOW)
        store.mark_picture_published([seq for seq, _, _, _ in pending])
        published = {subject for _, subject, _, _ in pending}
        uses = store.uses()
        conn = sqlite3.connect(db)
        try:
            subject_of = dict(conn.execute("SELECT event_id, subject FROM picture_outbox"))
        finally:
            conn.close()
        day = min(uses[e]["retain_until"] for e in subject_of) + timedelta(days=1)
        expiring = {subject_of[e] for e in subject_of if uses[e]["retain_until"] < day}
        assert store.pending_tombstones() == []
        store.purge_expired(day)
        tombstones = store.pending_tombstones()
        assert set(tombstones) == expiring and expiring < published
        store.mark_tombstoned(tombstones)
        assert store.pending_tombstones() == []


def test_a_member_skips_tombstones(tmp_path: Path) -> None:
    from node.aggregator.picture_sync import apply_picture
    from node.config import load_home
    from node.transport.base import Message

    build_picture(tmp_path, {"PAN": 300})
    pan = load_home(tmp_path / "pan")
    stats = apply_picture(pan, [Message("picture", 0, 0, b"FlowStatistic|PAN|x", None, 0)])
    assert stats.messages == 0 and stats.rejected_total == 0
