"""The node and aggregator ratios of an older tree and of this one, measured in
the same run against the same broker (issue 17: a restructure must not make
``make bench``'s ratios worse).

    git archive BASE | tar -x -C OLD_TREE
    python -m bench.trees OLD_TREE [--rounds 4] [--warm-up 1] [--records 20000]
        [--label BASE] [--write]

Each tree measures itself with its own ``bench.runs`` (``node_pipeline``
beside raw produce of the same bytes, then ``aggregator`` beside raw consume
of the same messages), in a child process that imports that tree's ``node``
and ``bench`` and nothing of the other's; the child says which ``node`` it
ran, and a child that ran the wrong one stops the comparison. The trees take
turns, in the order old, new, new, old, ... so that a slow stretch of the
shared machine falls on both. Before them each tree runs ``--warm-up`` times
unmeasured: in a comparison without it (2026-12-03), bare produce ran at about
3,200 events/s in most of the first five runs against a broker just started
and at 7,500 to 11,800 after, while the pipelines' own rates hardly moved, so
the tree that happened to run early lost half its ratio. The warmed run that
followed did not see it; a cold broker is the likely cause, not a shown one.
Each ratio is a pipeline's rate over its own
baseline's, taken minutes apart at most, so what the broker and the machine
do to both cancels out; the medians over the rounds are compared.

``--write`` puts the table in its section of bench/RESULTS.md and the medians
under ``trees`` in results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.machine import describe
from bench.sections import store_results, write_section
from node import config
from node.devkafka import LocalKafka, ensure_jars

HERE = Path(__file__).resolve().parent.parent

#: What each child runs: its tree's own benchmark of the node and the aggregator.
_CHILD = """
import json, pathlib, sys, tempfile
import node
from bench import runs
bootstrap, records = sys.argv[1], int(sys.argv[2])
with tempfile.TemporaryDirectory(prefix="corredor-trees-") as tmp:
    base = pathlib.Path(tmp)
    n = runs.node_pipeline(base, bootstrap, records)
    a = runs.aggregator(bootstrap, n, base)
print("RESULT " + json.dumps({"node_module": node.__file__, "node": n, "aggregator": a}))
"""

#: The figures compared, with the key each tree's bench gives them under.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("events", "node", "events"),
    ("mean_event_bytes", "node", "mean_event_bytes"),
    ("node_ratio", "node", "node_ratio"),
    ("node_events_per_s", "node", "node_events_per_s"),
    ("raw_produce_per_s", "node", "raw_produce_per_s"),
    ("confluent_node_ratio", "node", "confluent_node_ratio"),
    ("aggregator_ratio", "aggregator", "aggregator_ratio"),
    ("aggregator_events_per_s", "aggregator", "aggregator_events_per_s"),
    ("raw_consume_per_s", "aggregator", "raw_consume_per_s"),
    ("confluent_aggregator_ratio", "aggregator", "confluent_aggregator_ratio"),
)

#: The figures where lower would be worse: the verdict is theirs.
RATIOS = ("node_ratio", "aggregator_ratio")

BEGIN, END = "<!-- trees -->", "<!-- /trees -->"


def child(tree: Path, bootstrap: str, records: int) -> dict[str, Any]:
    """One tree's measurement, in a child process that sees only ``tree``."""
    # ``-c`` puts the working directory first on sys.path: run from the tree
    # itself, with nothing of this checkout on the path.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, bootstrap, str(records)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"the benchmark of {tree} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    expected = (tree / "node" / "__init__.py").resolve()
    if Path(result["node_module"]).resolve() != expected:
        raise RuntimeError(f"the child ran {result['node_module']}, not {expected}")
    return {
        name: result[part][key]
        for name, part, key in FIGURES
        if key in result[part]  # an older bench may not measure every figure
    }


def order(rounds: int) -> list[str]:
    """old, new, new, old, old, new, ...: each tree first in half the rounds."""
    out: list[str] = []
    for i in range(rounds):
        out += ["old", "new"] if i % 2 == 0 else ["new", "old"]
    return out


def compare(
    old: Path, bootstrap: str, records: int, rounds: int, console: Console, warm_up: int = 1
) -> dict[str, Any]:
    trees = {"old": old.resolve(), "new": HERE}
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    warming: list[dict[str, Any]] = []
    for i, side in enumerate(order(warm_up), 1):
        with console.status(f"warm-up: {side} tree, run {i} of {2 * warm_up}…"):
            warming.append({"tree": side, **child(trees[side], bootstrap, records)})
        console.print(
            f"warm-up {side} (not counted): node_ratio {warming[-1].get('node_ratio')}, "
            f"raw_produce_per_s {warming[-1].get('raw_produce_per_s')}"
        )
    load = [round(os.getloadavg()[0], 2)]
    sequence = order(rounds)
    for i, side in enumerate(sequence, 1):
        with console.status(f"{side} tree, run {i} of {len(sequence)}…"):
            started = time.monotonic()
            runs[side].append(child(trees[side], bootstrap, records))
        console.print(
            f"{side}: node_ratio {runs[side][-1].get('node_ratio')}, "
            f"aggregator_ratio {runs[side][-1].get('aggregator_ratio')} "
            f"({time.monotonic() - started:.0f} s)"
        )
    load.append(round(os.getloadavg()[0], 2))
    medians: dict[str, dict[str, float]] = {}
    for side, results in runs.items():
        keys = [name for name, _, _ in FIGURES if all(name in r for r in results)]
        medians[side] = {k: statistics.median(float(r[k]) for r in results) for k in keys}
    verdict = {k: medians["new"][k] >= medians["old"][k] for k in RATIOS}
    return {
        "records": records,
        "rounds": rounds,
        "warm_up": warming,
        "load_average_1m": load,
        "runs": runs,
        "median": medians,
        "no_worse": verdict,
    }


def table(result: dict[str, Any], label: str) -> Table:
    t = Table(title=f"{label} against this tree, medians of {result['rounds']} rounds")
    for col in ("figure", "old", "new", "new / old", "per run (old | new)"):
        t.add_column(col, justify="left" if col in ("figure", "per run (old | new)") else "right")
    for name, row in _rows(result):
        t.add_row(name, *row)
    return t


def _rows(result: dict[str, Any]) -> list[tuple[str, tuple[str, str, str, str]]]:
    old, new = result["median"]["old"], result["median"]["new"]
    rows = []
    for name, _, _ in FIGURES:
        if name not in old or name not in new:
            continue
        share = f"{new[name] / old[name]:.2f}" if old[name] else "-"
        each = " ".join(str(r[name]) for r in result["runs"]["old"]) + " | "
        each += " ".join(str(r[name]) for r in result["runs"]["new"])
        rows.append((name, (f"{old[name]:g}", f"{new[name]:g}", share, each)))
    return rows


def section(result: dict[str, Any], label: str, machine: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "## An older tree beside this one (node and aggregator ratios)",
        "",
        f"Written by `python -m bench.trees OLD_TREE --label {label}` on {when}: {label} "
        f"and this tree each ran their own `bench.runs` node and aggregator benchmarks "
        f"on {result['records']:,} records, {result['rounds']} times each, taking turns "
        f"(old, new, new, old, ...) against one broker, after {len(result['warm_up'])} "
        f"unmeasured warm-up runs. Load average (1 min) "
        f"{result['load_average_1m'][0]} at the start, {result['load_average_1m'][1]} at "
        f"the end, on {machine['cores']} cores ({machine['cpu']}).",
        "",
        "| figure | old | new | new / old | per run (old \\| new) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, (old, new, share, each) in _rows(result):
        lines.append(f"| {name} | {old} | {new} | {share} | {each.replace('|', chr(92) + '|')} |")
    verdict = ", ".join(
        f"{k} {'no worse' if ok else 'WORSE'}" for k, ok in result["no_worse"].items()
    )
    lines += ["", f"Verdict on the medians: {verdict}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trees")
    parser.add_argument("old", type=Path, help="an older tree (git archive BASE | tar -x -C DIR)")
    parser.add_argument("--rounds", type=int, default=4, help="runs of each tree (default 4)")
    parser.add_argument(
        "--warm-up", type=int, default=1, help="unmeasured runs of each tree first (default 1)"
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--label", help="what OLD is, for the report (default: its path)")
    parser.add_argument(
        "--write", action="store_true", help="into bench/RESULTS.md and results.json"
    )
    args = parser.parse_args()
    if not (args.old / "node" / "__init__.py").is_file() or not (args.old / "bench").is_dir():
        parser.error(f"{args.old}: not a tree with node/ and bench/")
    label = args.label or str(args.old)
    console = Console()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="corredor-trees-") as tmp:
        bootstrap = config.bootstrap_override()
        if bootstrap is None:
            jars = ensure_jars(config.kafka_pom(), config.kafka_dir())
            kafka = stack.enter_context(LocalKafka(1, jars=jars, base_dir=Path(tmp) / "kafka"))
            bootstrap = kafka.bootstrap
        result = compare(
            args.old, bootstrap, args.records, args.rounds, console, warm_up=args.warm_up
        )
    console.print(table(result, label))
    print(json.dumps({"label": label, **{k: result[k] for k in ("median", "no_worse")}}))
    if args.write:
        machine = describe()
        store_results({"trees": {"label": label, **result}})
        write_section(BEGIN, END, section(result, label, machine))


if __name__ == "__main__":
    main()
