"""`make bench`: run every benchmark beside its baseline and write the results.

    python -m bench [--quick] [--big] [--only node,aggregator,backfill,latency,audit] [--repeat N]

Starts its own single Apache Kafka broker from the cached jars (or uses
CORREDOR_KAFKA_BOOTSTRAP), and writes bench/RESULTS.md and bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import audit as audit_bench
from bench import runs
from bench.machine import describe
from node import config
from node.devkafka import LocalKafka, ensure_jars

HERE = Path(__file__).resolve().parent
TARGETS = {
    "node_ratio": (">=", 0.5),
    "aggregator_ratio": (">=", 0.25),
    "backfill_seconds": ("<", 120),
    "backfill_peak_mb": ("<", 500),
    "latency_p99_ms": ("<", 1000),
    "audit_usa_republish_max_s": ("<", 10),
    "audit_hnd_republish_max_s": ("<", 10),
}


def _met(key: str, value: float) -> bool:
    op, target = TARGETS[key]
    return value >= target if op == ">=" else value < target


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--big",
        action="store_true",
        help="the audit over five full years of USA's weekly releases (hours, not minutes)",
    )
    parser.add_argument("--only", default="node,aggregator,backfill,latency,audit")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="node pipeline runs (default 3, 1 with --quick); the median run is reported",
    )
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    only = set(args.only.split(","))
    sizes = {
        "node_records": 20_000 if args.quick else 100_000,
        "backfill_records": 100_000 if args.quick else 1_000_000,
        "latency_rate": 1000,
        "latency_seconds": 5 if args.quick else 30,
    }
    console = Console()
    machine = describe()
    results: dict[str, Any] = {"machine": machine, "sizes": sizes, "quick": args.quick}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="corredor-bench-") as tmp:
        base = Path(tmp)
        bootstrap = config.bootstrap_override()
        if bootstrap is None and only - {"audit"}:
            jars = ensure_jars(config.kafka_pom(), config.kafka_dir())
            kafka = stack.enter_context(LocalKafka(1, jars=jars, base_dir=base / "kafka"))
            bootstrap = kafka.bootstrap
        started = time.time()
        if {"node", "aggregator"} & only:
            # Two cores shared with the broker: single runs vary by several
            # percent, so the node pipeline runs ``repeat`` times (each with
            # its own baseline) and the median run by node_ratio is reported.
            node_runs = []
            for i in range(repeat):
                with console.status(f"node pipeline vs raw produce, run {i + 1} of {repeat}…"):
                    node_runs.append(
                        runs.node_pipeline(base / f"run{i}", bootstrap, sizes["node_records"])
                    )
            node_runs.sort(key=lambda r: float(r["node_ratio"]))
            node = node_runs[len(node_runs) // 2]
            results["node"] = {
                k: v for k, v in node.items() if k not in ("topic", "aggregator_home")
            }
            results["node"]["runs"] = repeat
            for key in ("node_ratio", "confluent_node_ratio"):
                values = sorted(float(r[key]) for r in node_runs)
                results["node"][f"{key}_median"] = round(statistics.median(values), 3)
                results["node"][f"{key}_range"] = f"{values[0]} - {values[-1]}"
            if "aggregator" in only:
                with console.status("aggregator vs raw consume…"):
                    results["aggregator"] = runs.aggregator(bootstrap, node)
        if "backfill" in only:
            with console.status(f"backfill of {sizes['backfill_records']:,} records…"):
                results["backfill"] = runs.backfill(base, bootstrap, sizes["backfill_records"])
        if "latency" in only:
            with console.status("end-to-end latency at 1,000 events/s…"):
                results["latency"] = runs.latency(
                    base, bootstrap, sizes["latency_rate"], sizes["latency_seconds"]
                )
        if "audit" in only:
            with console.status("the disclosure audit over weekly releases…"):
                results["audit"] = audit_bench.suite(base / "audit", big=args.big, quick=args.quick)
        results["wall_seconds"] = round(time.time() - started, 1)
    headline = _headline(results)
    results["headline"] = headline
    if not args.quick and only == {"node", "aggregator", "backfill", "latency", "audit"}:
        (HERE / "results.json").write_text(json.dumps({**headline, "details": results}, indent=2))
        # Keep the online folder's section (python -m bench.folder_load writes it).
        old = (HERE / "RESULTS.md").read_text() if (HERE / "RESULTS.md").exists() else ""
        folder = old[old.find("<!-- folder-load -->"):] if "<!-- folder-load -->" in old else ""
        text = _markdown(results, headline)
        (HERE / "RESULTS.md").write_text(text.rstrip("\n") + "\n\n" + folder if folder
                                         else text)
    elif not args.quick and only == {"audit"}:
        _update_audit(results, headline)
    _table(console, headline)


def _update_audit(results: dict[str, Any], headline: dict[str, Any]) -> None:
    """``--only audit``: the audit's keys and section replaced in results.json and
    RESULTS.md, every other figure there kept as the last full run wrote it."""
    path = HERE / "results.json"
    old = json.loads(path.read_text()) if path.exists() else {"details": {}}
    old.update(headline)
    old.setdefault("details", {})["audit"] = results["audit"]
    path.write_text(json.dumps(old, indent=2))
    md = HERE / "RESULTS.md"
    text = md.read_text() if md.exists() else "# Benchmark results\n"
    section = "\n".join(
        [AUDIT_START, *audit_markdown(results["audit"], results["machine"]), AUDIT_END]
    )
    if AUDIT_START in text and AUDIT_END in text:
        head, rest = text.split(AUDIT_START, 1)
        text = head + section + rest.split(AUDIT_END, 1)[1]
    elif "<!-- folder-load -->" in text:
        head, rest = text.split("<!-- folder-load -->", 1)
        text = head + section + "\n\n<!-- folder-load -->" + rest
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    md.write_text(text)


AUDIT_START = "<!-- audit -->"
AUDIT_END = "<!-- /audit -->"


def _headline(r: dict[str, Any]) -> dict[str, Any]:
    h: dict[str, Any] = {}
    if "node" in r:
        h["node_ratio"] = r["node"].get("node_ratio_median", r["node"]["node_ratio"])
        h["node_events_per_s"] = r["node"]["node_events_per_s"]
        h["raw_produce_per_s"] = r["node"]["raw_produce_per_s"]
        h["confluent_node_ratio"] = r["node"].get(
            "confluent_node_ratio_median", r["node"]["confluent_node_ratio"]
        )
        h["confluent_node_events_per_s"] = r["node"]["confluent_node_events_per_s"]
        h["raw_confluent_produce_per_s"] = r["node"]["raw_confluent_produce_per_s"]
    if "aggregator" in r:
        h["aggregator_ratio"] = r["aggregator"]["aggregator_ratio"]
        h["aggregator_events_per_s"] = r["aggregator"]["aggregator_events_per_s"]
        h["raw_consume_per_s"] = r["aggregator"]["raw_consume_per_s"]
    if "backfill" in r:
        h["backfill_seconds"] = r["backfill"]["backfill_seconds"]
        h["backfill_peak_mb"] = r["backfill"]["backfill_peak_mb"]
    if "latency" in r:
        h["latency_p50_ms"] = r["latency"]["latency_p50_ms"]
        h["latency_p99_ms"] = r["latency"]["latency_p99_ms"]
    if "audit" in r:
        for country in ("USA", "HND"):
            a = r["audit"][country]
            h[f"audit_{country.lower()}_first_release_s"] = a["first_release_seconds"]
            h[f"audit_{country.lower()}_republish_median_s"] = a["republish_median_seconds"]
            h[f"audit_{country.lower()}_republish_max_s"] = a["republish_max_seconds"]
    return h


def _table(console: Console, h: dict[str, Any]) -> None:
    table = Table(title="Corredor benchmarks", title_justify="left")
    for col in ("measure", "value", "target", "met"):
        table.add_column(col)
    for key, value in h.items():
        if key in TARGETS:
            op, target = TARGETS[key]
            ok = _met(key, value)
            table.add_row(
                key, str(value), f"{op} {target}", "[green]yes[/]" if ok else "[red]no[/]"
            )
        else:
            table.add_row(key, str(value), "", "")
    console.print(table)


def _markdown(r: dict[str, Any], h: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "Each figure is measured beside its baseline in the same run, against the same broker.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in m.items()],
        "",
        "## Headline",
        "",
        "| measure | value | target | met |",
        "| --- | --- | --- | --- |",
    ]
    for key, value in h.items():
        if key in TARGETS:
            op, target = TARGETS[key]
            lines.append(
                f"| {key} | {value} | {op} {target} | {'yes' if _met(key, value) else 'NO'} |"
            )
        else:
            lines.append(f"| {key} | {value} | | |")
    for section in ("node", "aggregator", "backfill", "latency"):
        if section in r:
            lines += ["", f"## {section}", "", "| | |", "| --- | --- |"]
            lines += [f"| {k} | {v} |" for k, v in r[section].items()]
    if "node" in r:
        n = r["node"]
        lines += [
            "",
            "## Where the node's time goes",
            "",
            f"Published serially, {n['events']:,} events took {n['serial_stage_seconds']} s "
            "to stage (policy, egress guard, Avro, batch seals, outbox transactions) and "
            f"{n['serial_drain_seconds']} s to drain (produce, acknowledgement, marking rows, "
            f"audit chain): a ratio of {n['serial_ratio']}. As `corredor publish` runs it, "
            "stager processes build record-id ranges in committed chunks while a drainer "
            f"process sends what is committed: {n['node_seconds']} s, a ratio of "
            f"{n['node_ratio']} against {n['raw_produce_seconds']} s for bare kafka-python "
            "to produce the same bytes. Both cores are then busy (see Notes); the rest of "
            "the gap is CPU: bare produce spends one core on kafka-python alone, and the node "
            "spends that same kafka-python work plus staging. With the optional "
            "confluent-kafka producer (`kafka.client: confluent`) the same publish took "
            f"{n['confluent_node_seconds']} s, {n['confluent_node_ratio']} of the "
            "kafka-python baseline; bare confluent-kafka produces the same bytes at "
            f"{n['raw_confluent_produce_per_s']:,} events/s.",
        ]
        if "runs" in n:
            lines += [
                "",
                f"Over {n['runs']} runs (the figures above are the median run by node_ratio), "
                f"node_ratio was {n['node_ratio_range']} (median {n['node_ratio_median']}) and "
                f"confluent_node_ratio {n['confluent_node_ratio_range']} (median "
                f"{n['confluent_node_ratio_median']}).",
            ]
    if "audit" in r:
        lines += ["", AUDIT_START, *audit_markdown(r["audit"]), AUDIT_END]
    lines += ["", "## Notes", "", NOTES]
    return "\n".join(lines) + "\n"


def audit_markdown(a: dict[str, Any], machine: dict[str, Any] | None = None) -> list[str]:
    """The audit's section of RESULTS.md (with the machine when written alone)."""
    lines = [
        "## The disclosure audit over weekly releases",
        "",
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Weekly releases planned as `corredor publish` plans them "
        "(`pipeline.plan_flow_release`: every stored record counted, each block "
        "released against its suppression-ledger entry, secondary suppression and "
        "the interval audit) and their ledger entries staged (`NodeStore.stage`). "
        "300,000 records a year, 30% registered 1 to 8 weeks late (bench/audit.py). "
        "Times are per release, in seconds. The default run is HND one year and USA "
        "two weeks; `python -m bench --only audit --big` runs five years of each. "
        f"Load average on the shared machine: {a['load_average_at_start']} at the "
        f"start, {a['load_average_at_end']} at the end.",
        "",
        "| policy | weeks | records | first | after one week | republish median | p95 | max "
        "| programmes | ledger rows | ledger bytes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for country in ("USA", "HND"):
        x = a[country]
        lines.append(
            f"| {country} | {x['weeks']} | {x['records']:,} | {x['first_release_seconds']} "
            f"| {x['republish_after_one_week_seconds']} | {x['republish_median_seconds']} "
            f"| {x['republish_p95_seconds']} | {x['republish_max_seconds']} "
            f"| {x['programmes']:,} | {x['ledger_rows']} | {x['ledger_bytes']:,} |"
        )
    if machine is not None:
        cpu = f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB"
        lines += ["", f"Machine: {cpu}; {machine['os']}; Python {machine['python']}."]
    cmp = a["compare_usa_50k_2_weeks"]
    lines += [
        "",
        "The same two weeks of USA at 50,000 records a year, solved both ways in this "
        "run: `plain` (every programme from scratch through scipy's linprog/milp, as "
        f"before) {cmp['plain']['times']} s ({cmp['plain']['programmes']:,} programmes); "
        f"`fast` (one warm-started highspy model per component) {cmp['fast']['times']} s "
        f"({cmp['fast']['programmes']:,} programmes).",
    ]
    return lines


NOTES = """\
- **Node pipeline**: a United States node (its policy shares pseudonymised
  encounter records, one event per record, plus weekly flow cells) publishes
  everything it stored, as `corredor publish` does (`ops.publish`, which
  overlaps from 20,000 rows of work): the policy, the egress guard, Avro
  single-object encoding, Ed25519 batch seals (one signature per 64 events,
  each event carrying its Merkle proof), outbox transactions, idempotent
  produce with `acks=all`, and the acknowledgement marked in SQLite with its
  audit entry. Stager processes (one per core) each stage a record-id range;
  a drainer process sends what is committed. Baseline: the same bytes, read
  back from the outbox, produced by bare kafka-python with the same producer
  settings. Each variant publishes a copy of the same member to its own topic.
- **Measured on the way** (per event, 100k-event staging): per-event Ed25519
  signatures (~21 us) became batch seals (~2 us); fastavro re-encoded the
  envelope's shared fields for every event (template: 7 -> 1 us) and inferred
  the seal's union branch (hand-built wrapper: 5 -> 1 us); random UUIDv4 event
  ids scattered index inserts (UUIDv7: 23 -> 16 us for the three inserts);
  the WAL checkpointed and fsynced after nearly every chunk (every 64 MB
  now: ~10 us); the drain re-read every acknowledged row for its audit entry
  (18.6 -> 16.2 us of bookkeeping). Earlier: fastavro given its hinted parse
  (2-3x), the egress guard's ASCII fast path and cache (17 s -> 5 s for 20k).
- **Why kafka-python stays under 0.5 here**: on this 2-core machine bare
  produce keeps one core busy with kafka-python's per-record Python work
  (about 30 us a record); the node must do that same work in its drainer and
  stage every event besides (about 60 us of CPU). Both cores are saturated
  while it runs, so the ratio is bounded by CPU, not by waiting. The optional
  confluent-kafka producer moves the per-record produce work into librdkafka.
- **Aggregator**: the same topic consumed, each event's seal verified against
  the manifest (one Ed25519 verification per sealed batch, the Merkle path per
  event), decoded by fingerprint and applied in one SQLite transaction per
  poll batch. Baseline: bare kafka-python consume of the same messages.
- **Backfill**: five years of Panama's records in one CSV, validated row by row
  with pydantic, stored, then published (flows only under Panama's law), in a
  child process whose peak RSS is reported. Generating the CSV is not counted.
- **Latency**: pre-signed events produced at a steady 1,000/s while
  `corredor aggregate --follow` runs in its own process; latency is from send
  to the event's row being written in the picture's transaction.
"""


if __name__ == "__main__":
    main()
