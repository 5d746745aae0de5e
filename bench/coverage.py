"""Coverage of the demo's data under the shipped policies (issue 16).

    python -m bench.coverage [--scale S]

The demo federation's four countries (PAN, CRI, GTM, MEX) at the demo's
volumes (``node.demo.federation.DEMO_VOLUMES`` times ``--scale``), its weeks
and its seeds, each released by its shipped policy exactly as ``preview``
plans a first release (``node.policy.release.release_flows``). Reported per
country: the share of its encounters that exact published numbers account
for, per view (``node.policy.release.COVERAGE_VIEWS``: the period total, the
period by nationality or region, the detail), and the seconds the release took.

Writes a section of bench/RESULTS.md (between markers) and the key
``coverage_demo`` of bench/results.json (other keys kept).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from typing import Any

from bench.machine import describe
from bench.sections import store_results, write_section
from node.config import policies_dir
from node.demo.federation import DEMO_START, DEMO_VOLUMES, DEMO_WEEKS
from node.demo.synth import generate_encounters
from node.policy.loader import load_policy
from node.policy.release import COVERAGE_VIEWS, coverage, release_flows

START, END = "<!-- coverage-demo -->", "<!-- /coverage-demo -->"


def measure(scale: float = 1.0, seed: int = 2016) -> dict[str, Any]:
    """Each demo country's coverage under its shipped policy (seeds as the demo's)."""
    out: dict[str, Any] = {"scale": scale, "weeks": DEMO_WEEKS, "countries": {}}
    for i, (country, volume) in enumerate(DEMO_VOLUMES.items()):
        n = max(50, int(volume * scale))
        rows = generate_encounters(country, n, seed=seed + i, start=DEMO_START, weeks=DEMO_WEEKS)
        rules = load_policy(policies_dir() / f"{country}.yaml").exchanges.flow_statistics
        started = time.perf_counter()
        inputs = [
            (
                r["nationality"],
                r["sex"],
                date.fromisoformat(r["date_of_birth"]),
                date.fromisoformat(r["encounter_date"]),
                r["previous_country"] or None,
            )
            for r in rows
        ]
        release = release_flows(inputs, rules)
        seconds = time.perf_counter() - started
        out["countries"][country] = {
            "records": n,
            "coverage": coverage(release, rules),
            "published_cells": len(release.cells),
            "release_seconds": round(seconds, 2),
        }
    return out


def markdown(result: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    views = " | ".join(COVERAGE_VIEWS)
    lines = [
        "## Coverage of the demo's data",
        "",
        f"Written by `python -m bench.coverage` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: the demo's four countries "
        f"at {result['scale']:g} x its volumes over {result['weeks']} weeks, each released by "
        "its shipped policy as `preview` plans a first release. Share of each country's "
        "encounters in exact published numbers, per view.",
        "",
        f"| country | records | {views} | published cells | release s |",
        "| --- | --- |" + " --- |" * len(COVERAGE_VIEWS) + " --- | --- |",
    ]
    for country, c in result["countries"].items():
        shares = " | ".join(
            "-" if c["coverage"][v] is None else f"{100 * c['coverage'][v]:.1f}%"
            for v in COVERAGE_VIEWS
        )
        lines.append(
            f"| {country} | {c['records']:,} | {shares} | {c['published_cells']:,} "
            f"| {c['release_seconds']} |"
        )
    lines += [
        "",
        "`nationality` is the period by nationality: a country whose law lets only the "
        "region of nationality out (GTM) publishes a region table, which answers no "
        "single nationality, so only its detail cells naming one count there.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"Python {machine['python']}.",
    ]
    return lines


def write(result: dict[str, Any]) -> None:
    store_results({"coverage_demo": result})
    write_section(START, END, "\n".join(markdown(result, describe())))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.coverage")
    parser.add_argument("--scale", type=float, default=1.0, help="times the demo's volumes")
    args = parser.parse_args()
    result = measure(args.scale)
    write(result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
