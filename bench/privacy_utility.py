"""Utility of differential privacy beside suppression, on the same data (issue 16).

    python -m bench.privacy_utility [--repeat N]

Three countries (PAN, CRI, MEX), about 4,000 synthetic records over six weeks
(node.demo.synth, fixed seeds). Each country's shipped policy is released as
it is (suppression), then with ``method: differential_privacy`` on the same
dimensions (epsilon 1 per release, 4 revisions, OpenDP's discrete Laplace),
once with the finest table only and once with the tables a statistics office
publishes (national total, per nationality, the detail). Reported, per method:

- ``mae_week_country``: mean absolute error of the weekly national totals
  (week x country), from the most precise cell published: the ``_T`` total
  where there is one, else the sum of the published cells;
- ``mae_week_country_nationality``: the same for week x country x nationality;
- ``share_cells_published``: of the cells holding at least one encounter, the
  share published (as a cell of their own);
- ``coverage_95``: for noisy cells, the share whose true count is within the
  published 95% interval;
- ``exact_share``: the share of encounters in exact published numbers.

Writes a section of bench/RESULTS.md (between markers) and the key
``privacy_utility`` of bench/results.json (other keys kept).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from bench.sections import store_results, write_section
from node.config import policies_dir
from node.demo.synth import generate_encounters
from node.model.codes import RCM_MEMBERS, iso_week
from node.policy import dp_domain, privacy
from node.policy.atoms import FlowInput
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.loader import load_policy
from node.policy.release import release_flows

BEGIN, END = "<!-- privacy-utility -->", "<!-- /privacy-utility -->"
COUNTRIES = {"PAN": 1300, "CRI": 1300, "MEX": 1400}
START = date(2024, 1, 1)
TODAY = date(2024, 3, 1)
#: The public key domain a DP policy declares (values outside count as _O).
NATIONALITIES = [
    "HTI", "CHN", "CMR", "AFG", "AGO", "IND", "COD", "CUB", "VEN", "ECU", "COL",
    "SOM", "NPL", "BGD", "UZB", "GHA", "GIN", "SEN", "ERI",
]  # fmt: skip
PREVIOUS = [*RCM_MEMBERS, "COL", "ECU", "BRA", "HTI", "NIC", "BLZ"]


def _inputs(rows: list[dict[str, str]]) -> list[FlowInput]:
    return [
        (
            r["nationality"],
            r["sex"],
            date.fromisoformat(r["date_of_birth"]),
            date.fromisoformat(r["encounter_date"]),
            r["previous_country"] or None,
        )
        for r in rows
    ]


def _dp_rules(
    base: FlowStatisticsRules, tables: Sequence[Sequence[str]] | None
) -> FlowStatisticsRules:
    data = base.model_dump()
    data.update(
        coarsen=[],
        margins=[],
        rounding=1,
        tables=tables,  # None: the finest table only
        method="differential_privacy",
        privacy={
            "epsilon_per_release": 1.0,
            "budget": dict.fromkeys(base.audiences, 1.0),
            "revisions": 4,
            "domain": {"nationality": NATIONALITIES, "previous_country": PREVIOUS},
        },
    )
    return FlowStatisticsRules(**data)


def _measure(country: str, rows: list[FlowInput], rules: FlowStatisticsRules) -> dict[str, Any]:
    """Errors of one release of one country against the truth."""
    release = release_flows(rows, rules, privacy_states={}, today=TODAY)
    names = list(rules.dimensions)
    truth_total: Counter[str] = Counter()
    truth_nat: Counter[tuple[str, str]] = Counter()
    atoms: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for row in rows:
        week = iso_week(row[3])
        truth_total[week] += 1
        truth_nat[(week, row[0])] += 1
    for atom, n in _atoms(rows, rules).items():
        atoms[atom] = n
    total_cell: dict[str, int] = {}
    nat_cell: dict[tuple[str, str], int] = {}
    sum_total: Counter[str] = Counter()
    sum_nat: Counter[tuple[str, str]] = Counter()
    published_atoms: set[tuple[str, tuple[str, ...]]] = set()
    inside = noisy = exact = 0
    noisy_truth = privacy.count_cells(rows, rules) if rules.method == "differential_privacy" else {}
    for cell in release.cells:
        dims = dict(cell.dimensions)
        values = tuple(dims.get(n, "") for n in names)
        totals = [n for n in names if dims.get(n) == dp_domain.TOTAL]
        if cell.ci95 is not None:
            noisy += 1
        if len(totals) == len(names):
            total_cell[cell.period] = cell.count
        elif totals == [n for n in names if n != "nationality"] and "nationality" in dims:
            nat_cell[(cell.period, dims["nationality"])] = cell.count
        elif not totals:
            sum_total[cell.period] += cell.count
            if "nationality" in dims:
                sum_nat[(cell.period, dims["nationality"])] += cell.count
            published_atoms.add((cell.period, values))
            if cell.ci95 is None:
                exact += cell.count
        if cell.ci95 is not None:
            key = "|".join(v for _, v in cell.dimensions)
            true = noisy_truth.get(cell.period, Counter())[key]
            inside += cell.ci95[0] <= true <= cell.ci95[1]
    weeks = sorted(truth_total)
    # a table the release publishes answers for itself: a cell of it that is
    # absent is a noisy 0, never the (biased) sum of the detail below it
    err_total = [
        abs((total_cell.get(w, 0) if total_cell else sum_total[w]) - truth_total[w]) for w in weeks
    ]
    keys = sorted(truth_nat)
    err_nat = [abs((nat_cell.get(k, 0) if nat_cell else sum_nat[k]) - truth_nat[k]) for k in keys]
    with_data = [a for a, n in atoms.items() if n > 0]
    return {
        "err_total": err_total,
        "err_nat": err_nat,
        "cells_with_data": len(with_data),
        "published_with_data": sum(1 for a in with_data if a in published_atoms),
        "noisy": noisy,
        "inside": inside,
        "exact": exact,
        "encounters": len(rows),
    }


def _atoms(
    rows: list[FlowInput], rules: FlowStatisticsRules
) -> Counter[tuple[str, tuple[str, ...]]]:
    """Finest cells with data, keyed as the release labels them (DP maps values
    outside the public domain to _O)."""
    out: Counter[tuple[str, tuple[str, ...]]] = Counter()
    if rules.method == "differential_privacy":
        for period, cells in privacy.count_cells(rows, rules).items():
            for key, n in cells.items():
                if dp_domain.TOTAL not in key.split("|"):
                    out[(period, tuple(key.split("|")))] += n
        return out
    from node.policy.atoms import count_atoms

    for (period, values), n in count_atoms(rows, rules).items():
        out[(period, values)] += n
    return out


def run(repeat: int) -> dict[str, Any]:
    data = {
        c: _inputs(generate_encounters(c, n, seed=16, start=START, weeks=6))
        for c, n in COUNTRIES.items()
    }
    methods: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for method in ("suppression", "dp_finest", "dp_tables"):
        acc: dict[str, Any] = Counter()
        runs = 1 if method == "suppression" else repeat
        for _ in range(runs):
            for country, rows in data.items():
                base = load_policy(policies_dir() / f"{country}.yaml").exchanges.flow_statistics
                if method == "suppression":
                    rules = base
                elif method == "dp_finest":
                    rules = _dp_rules(base, None)
                else:
                    dims = list(base.dimensions)
                    nat = [d for d in dims if d in ("nationality", "nationality_region")]
                    rules = _dp_rules(base, [[], nat, dims])
                m = _measure(country, rows, rules)
                acc["sum_err_total"] += sum(m["err_total"])
                acc["n_total"] += len(m["err_total"])
                acc["sum_err_nat"] += sum(m["err_nat"])
                acc["n_nat"] += len(m["err_nat"])
                acc["cells_with_data"] += m["cells_with_data"]
                acc["published_with_data"] += m["published_with_data"]
                acc["noisy"] += m["noisy"]
                acc["inside"] += m["inside"]
                acc["exact"] += m["exact"]
                acc["encounters"] += m["encounters"]
        methods[method] = {
            "mae_week_country": round(acc["sum_err_total"] / acc["n_total"], 1),
            "mae_week_country_nationality": round(acc["sum_err_nat"] / acc["n_nat"], 2),
            "share_cells_published": round(acc["published_with_data"] / acc["cells_with_data"], 3),
            "coverage_95": round(acc["inside"] / acc["noisy"], 4) if acc["noisy"] else None,
            "exact_share": round(acc["exact"] / acc["encounters"], 3),
            "runs": runs,
        }
    return {
        "countries": COUNTRIES,
        "weeks": 6,
        "epsilon_per_release": 1.0,
        "revisions": 4,
        "methods": methods,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _write(result: dict[str, Any]) -> None:
    store_results({"privacy_utility": result})
    rows = "\n".join(
        f"| {name} | {m['mae_week_country']} | {m['mae_week_country_nationality']} | "
        f"{m['share_cells_published']} | {m['coverage_95'] if m['coverage_95'] else '-'} | "
        f"{m['exact_share']} | {m['runs']} |"
        for name, m in result["methods"].items()
    )
    section = (
        "## Differential privacy beside suppression (issue 16)\n\n"
        f"Written by `python -m bench.privacy_utility` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The same synthetic data "
        "(PAN 1,300, CRI 1,300, MEX 1,400 records over six weeks, fixed seeds) released "
        "under each country's shipped policy (suppression) and under the same dimensions "
        "with `method: differential_privacy` (epsilon 1 per release covering 4 revisions, "
        "OpenDP discrete Laplace): `dp_finest` publishes the finest table only, `dp_tables` "
        "the national total, the per-nationality table and the detail (epsilon split over "
        "the three). Errors are against the true counts, each total read from the most "
        "precise number published (a `_T` cell where there is one, else the sum of the "
        "published cells, which under suppression is a lower bound). `share_cells_published`:"
        " of the finest cells holding an encounter, the share published as a cell of their "
        "own. DP runs are averaged over `runs` independent releases.\n\n"
        "| method | MAE week x country | MAE week x country x nationality | "
        "share of cells published | 95% interval coverage | exact share | runs |\n"
        f"| --- | --- | --- | --- | --- | --- | --- |\n{rows}\n\n"
        "Reading it: the shipped policies publish exact national and per-nationality "
        "totals beside the detail, so under suppression the weekly totals are exact and "
        "the error is in the nationality totals complementary suppression hid (read "
        "there as the sum of the detail that survived, a lower bound). "
        "Summing noisy finest cells is worse: each published cell adds its noise, "
        "and `max(0, noisy)` over the many empty cells of the domain biases the sum "
        "upward (`dp_finest`). Measured as tables of their own (`dp_tables`) the noisy "
        "totals are unbiased, but beside suppression with published tables they lose on "
        "the totals (the exact ones have no error at all) and gain on the detail: the "
        "share of cells published, at the price of no exact number and wide intervals "
        "on small cells (scale levels x tables / epsilon = 9 here: +-27 at 95%).\n"
    )
    write_section(BEGIN, END, section)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.privacy_utility")
    parser.add_argument("--repeat", type=int, default=5, help="DP releases averaged")
    args = parser.parse_args()
    result = run(args.repeat)
    _write(result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
