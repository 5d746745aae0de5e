"""The disclosure audit's cost: weekly releases of one country, years of them.

    python -m bench.audit [--weeks N] [--per-year N] [--policy USA,HND] [--solver fast|plain]

Each week's records are written into a real NodeStore's ``raw_encounter``
(straight into the table: ingest is measured elsewhere), then the release is
planned as ``corredor publish`` plans it (``flow_release.plan_flow_release``:
every stored record counted into atoms, each block released against the
suppression ledger entry of its last release, with the audit) and its ledger
entries are staged with ``NodeStore.stage``. Records arrive late as at a real
border office: most in the week of the encounter, the rest over the next
weeks. No Kafka: the events themselves are measured by ``make bench``'s node
run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from node.member.event_factory import FLOW_KIND
from node.member.flow_release import plan_flow_release
from node.policy import audit, intervals
from node.policy.loader import load_policy
from node.store.node_store import NodeStore

HERE = Path(__file__).resolve().parent
POLICIES = HERE.parent / "policies"

#: Nationalities met at the southern border, heaviest first (weights fall off
#: like a Zipf law: a few large groups and a long tail of small ones).
NATIONALITIES = [
    "MEX",
    "GTM",
    "HND",
    "VEN",
    "SLV",
    "CUB",
    "COL",
    "ECU",
    "NIC",
    "HTI",
    "PER",
    "BRA",
    "IND",
    "CHN",
    "TUR",
    "RUS",
    "DOM",
    "ROU",
    "SEN",
    "MRT",
    "UZB",
    "AFG",
    "GHA",
    "NGA",
    "CMR",
    "ERI",
    "ETH",
    "PAK",
    "BGD",
    "NPL",
    "GEO",
    "KGZ",
    "ARM",
    "TJK",
    "KAZ",
    "JAM",
    "BLZ",
    "CRI",
    "PAN",
    "CHL",
    "ARG",
    "BOL",
    "URY",
    "PRY",
    "EGY",
    "MAR",
    "DZA",
    "TUN",
    "SYR",
    "IRQ",
    "IRN",
    "VNM",
    "PHL",
    "LKA",
]
PREVIOUS = ("MEX", "GTM", "HND", "PAN", "COL", "NIC", "SLV", "CRI")


def _weights(n: int, skew: float = 1.1) -> list[float]:
    return [1.0 / (i + 1) ** skew for i in range(n)]


def week_start(first: date, week: int) -> date:
    return first + timedelta(weeks=week)


def records_of_week(rng: random.Random, first: date, week: int, n: int) -> list[tuple[Any, ...]]:
    """``n`` encounters in week ``week``, each with the week it is registered
    in (70% the same week, the rest 1 to 8 weeks late)."""
    nat_w = _weights(len(NATIONALITIES))
    prev_w = _weights(len(PREVIOUS), 1.5)
    start = week_start(first, week)
    rows = []
    for _ in range(n):
        met = start + timedelta(days=rng.randrange(7))
        nationality = rng.choices(NATIONALITIES, nat_w)[0]
        sex = "F" if rng.random() < 0.38 else "M"
        adult = rng.random() > 0.18
        age = min(int(rng.lognormvariate(3.3, 0.45)), 90) if adult else rng.randrange(18)
        born = met - timedelta(days=age * 365 + rng.randrange(365))
        previous = None if rng.random() < 0.04 else rng.choices(PREVIOUS, prev_w)[0]
        late = 0 if rng.random() < 0.7 else min(1 + int(rng.expovariate(0.5)), 8)
        rows.append((week + late, nationality, sex, born, met, previous))
    return rows


def _insert(store: NodeStore, rows: list[tuple[Any, ...]], serial: int) -> int:
    now = time.time()
    batch = []
    for _registered, nationality, sex, born, met, previous in rows:
        serial += 1
        # placeholders where flow statistics read nothing; raw values never leave
        batch.append(
            (
                f"R{serial:09d}",
                f"D{serial:09d}",
                "-",
                "-",
                born.isoformat(),
                sex,
                nationality,
                met.isoformat(),
                "-",
                previous,
                None,
                "bench",
                now,
            )
        )
    with store._conn:  # the bench fills the table directly, not through ingest
        store._conn.executemany(
            "INSERT INTO raw_encounter (record_id, document_number, family_name, given_names, "
            "date_of_birth, sex, nationality, encounter_date, encounter_place, previous_country, "
            "health_notes, source_file, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            batch,
        )
    return serial


def run(
    country: str,
    weeks: int,
    per_year: int,
    base: Path,
    seed: int = 15,
    progress: Callable[[int, float, int], None] | None = None,
) -> dict[str, Any]:
    """``weeks`` weekly releases of ``country``; times and ledger size."""
    policy = load_policy(POLICIES / f"{country}.yaml")
    rng = random.Random(f"{country}-{seed}")
    first = date(2021, 1, 4)  # a Monday
    per_week = per_year // 52
    pending: dict[int, list[tuple[Any, ...]]] = {}
    base.mkdir(parents=True, exist_ok=True)
    store = NodeStore(base / f"{country}.db")
    serial = 0
    times: list[float] = []
    solves: list[int] = []
    records = 0
    try:
        for week in range(weeks):
            for row in records_of_week(rng, first, week, per_week):
                pending.setdefault(row[0], []).append(row)
            arrived = pending.pop(week, [])
            serial = _insert(store, arrived, serial)
            records += len(arrived)
            before = intervals.STATS.solves
            started = time.perf_counter()
            plan = plan_flow_release(store, policy)
            store.stage(
                [],
                {
                    (FLOW_KIND, block): b.ledger.to_json()
                    for block, b in plan.blocks.items()
                    if b.ledger is not None
                },
            )
            times.append(time.perf_counter() - started)
            solves.append(intervals.STATS.solves - before)
            if progress is not None:
                progress(week, times[-1], solves[-1])
        rows, size = store._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(entry)), 0) FROM suppression_ledger"
        ).fetchone()
    finally:
        store.close()
    later = sorted(times[1:])
    return {
        "policy": country,
        "weeks": weeks,
        "records": records,
        "records_per_year": per_year,
        "solver": audit.SOLVER,
        "first_release_seconds": round(times[0], 3),
        "republish_after_one_week_seconds": round(times[1], 3) if len(times) > 1 else None,
        "republish_median_seconds": round(statistics.median(later), 3) if later else None,
        "republish_p95_seconds": round(later[int(0.95 * (len(later) - 1))], 3) if later else None,
        "republish_max_seconds": round(later[-1], 3) if later else None,
        "programmes": sum(solves),
        "ledger_rows": int(rows),
        "ledger_bytes": int(size),
        "times": [round(t, 3) for t in times],
    }


def suite(base: Path, *, big: bool, quick: bool) -> dict[str, Any]:
    """What ``make bench`` runs: both shipped policies at 300,000 records a
    year (five years each with ``big``; by default HND one year and USA two
    weeks), and the fast solver beside the plain one on the same small data."""
    # USA's republish is the slow part (minutes at 300,000 a year on a loaded
    # 2-core machine): the default measures its first release and the
    # republish after one week; --big the five years
    usa_weeks = 5 * 52 if big else 2
    usa_per_year = 50_000 if quick else 300_000
    hnd_weeks = 5 * 52 if big else (13 if quick else 52)
    out: dict[str, Any] = {"load_average_at_start": round(os.getloadavg()[0], 1)}
    audit.SOLVER = "fast"
    out["HND"] = run("HND", hnd_weeks, 300_000, base / "hnd")
    out["USA"] = run("USA", usa_weeks, usa_per_year, base / "usa")
    compare: dict[str, Any] = {}
    for solver in ("plain", "fast"):
        audit.SOLVER = solver
        r = run("USA", 2, 50_000, base / f"cmp-{solver}")
        compare[solver] = {k: r[k] for k in ("times", "programmes")}
    audit.SOLVER = "fast"
    out["compare_usa_50k_2_weeks"] = compare
    out["load_average_at_end"] = round(os.getloadavg()[0], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--per-year", type=int, default=300_000)
    parser.add_argument("--policy", default="USA,HND")
    parser.add_argument("--solver", choices=("fast", "plain"), default="fast")
    args = parser.parse_args()
    audit.SOLVER = args.solver
    with tempfile.TemporaryDirectory(prefix="corredor-bench-audit-") as tmp:
        for country in args.policy.split(","):
            base = Path(tmp) / country
            base.mkdir()
            result = run(
                country,
                args.weeks,
                args.per_year,
                base,
                progress=lambda w, t, n: print(f"week {w}: {t:.2f} s, {n} programmes", flush=True),
            )
            print(json.dumps({k: v for k, v in result.items() if k != "times"}))


if __name__ == "__main__":
    main()
