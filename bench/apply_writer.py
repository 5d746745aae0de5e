"""The aggregator's single writer on its own: apply of a topic held in memory,
without Kafka, to compare two versions of the apply side by side.

    python -m bench.apply_writer DIR [--records N] [--batch 2000] [--profile] [--no-serial]
    python -m bench.apply_writer DIR --against OLD_TREE [--repeat N] [--write]

The first run fills DIR with a member's published events (the node
benchmark's records-only USA with k-anonymity 1: one EncounterRecord event
per record) and the
aggregator home that trusts it; later runs reuse them, so a run of an older
tree (``PYTHONPATH=old-tree``) and of this one apply the same bytes. Each run
applies the topic into a fresh store in poll batches of ``--batch`` messages,
twice: with every check in this process (what ``aggregate`` with no check
workers costs), and with the checks done beforehand (the writer alone: what
is left to the one process that holds the picture when workers check), then
redelivers the whole topic (duplicates only). Prints JSON.

``--against``: an older tree's ``node/`` (e.g. ``git archive BASE node schemas
policies | tar -x -C OLD_TREE``) and this one run alternately in child
processes, ``--repeat`` times each; ``--write`` puts the medians in their
section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pickle
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import node
from bench.runs import START, records_only_policy
from node.aggregator.apply import Aggregator
from node.aggregator.setup import add_member, init_aggregator
from node.config import Home
from node.demo.synth import generate_encounters, write_csv
from node.federation import trust
from node.federation.manifest import read_signed
from node.home import event_codec, open_home, regional_floor
from node.member.drain import drain_outbox
from node.member.intake import ingest
from node.member.member_home import init_member
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.base import Message
from node.transport.memory import MemorySink, MemoryTopic


def _policy(work: Path) -> Path:
    """The node benchmark's records-only policy with k-anonymity 1: one event
    per record, so the topic's size is the records'."""
    path = records_only_policy(work, "USA")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["exchanges"]["encounter_records"]["k_anonymity"] = 1
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def prepare(work: Path, records: int) -> tuple[Home, list[Message]]:
    """The aggregator home and the topic's messages, made once per DIR."""
    cache = work / "messages.pickle"
    if cache.exists():
        return open_home(work / "ts"), pickle.loads(cache.read_bytes())
    agg = init_aggregator(work / "ts")
    member = init_member(
        work / "usa",
        "USA",
        secretariat_pem=agg.secretariat_pub_path.read_text(encoding="ascii"),
        policy=_policy(work),
    )
    add_member(agg, "USA", member.public_key_path, member.encryption_pub_path)
    trust.accept_manifest(member, read_signed(agg.manifest_path))
    rows = generate_encounters("USA", records, seed=8, start=START, weeks=12)
    path = work / "USA.csv"
    write_csv(rows, path)
    ingest(member, path)
    topic = MemoryTopic("shared")
    with NodeStore(member.store_path) as store:
        drain_outbox(store, MemorySink(topic))
    cache.write_bytes(pickle.dumps(topic.records))
    return agg, topic.records


class _Prechecked(Aggregator):
    """Checks looked up from a run done beforehand: the writer's cost alone."""

    results: dict[int, object]

    def _checks(self, batch: list[Message]) -> Any:
        return (self.results[m.offset] for m in batch)


def _apply(agg: Aggregator, messages: list[Message], batch: int) -> tuple[float, float, int]:
    started, cpu = time.perf_counter(), time.process_time()
    applied = 0
    for i in range(0, len(messages), batch):
        applied += agg.apply_batch(messages[i : i + batch]).applied
    return time.perf_counter() - started, time.process_time() - cpu, applied


def run(work: Path, records: int, batch: int, profile: bool, serial: bool) -> dict[str, Any]:
    home, messages = prepare(work, records)
    codec, floor, keys = event_codec(), regional_floor(), trust.key_directory(home)
    out: dict[str, Any] = {
        "node": str(Path(node.__file__).resolve().parent),
        "messages": len(messages),
        "batch": batch,
    }
    with tempfile.TemporaryDirectory(prefix="apply-writer-") as tmp:
        with PictureStore(Path(tmp) / "checked.db") as store:
            agg = Aggregator(store, codec, keys, floor=floor)
            if serial:
                wall, cpu, applied = _apply(agg, messages, batch)
                out["serial_events_per_s"] = round(applied / wall)
                out["serial_cpu_us"] = round(cpu / len(messages) * 1e6, 1)
            results = {m.offset: agg._check_result(m) for m in messages}
        with PictureStore(Path(tmp) / "writer.db") as store:
            writer = _Prechecked(store, codec, keys, floor=floor)
            writer.results = results
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                profiler.enable()
            wall, cpu, applied = _apply(writer, messages, batch)
            if profiler is not None:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            out["applied"] = applied
            out["writer_events_per_s"] = round(applied / wall)
            out["writer_cpu_us"] = round(cpu / len(messages) * 1e6, 1)
            wall, cpu, _ = _apply(writer, messages, batch)
            out["redelivery_events_per_s"] = round(len(messages) / wall)
            out["redelivery_cpu_us"] = round(cpu / len(messages) * 1e6, 1)
    return out


def _child(tree: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    """One run in a child process, of ``tree``'s ``node`` (None: this one's)."""
    here = str(Path(__file__).resolve().parent.parent)
    path = here if tree is None else f"{tree}{os.pathsep}{here}"
    cmd = [
        sys.executable,
        "-m",
        "bench.apply_writer",
        str(args.work),
        "--records",
        str(args.records),
        "--batch",
        str(args.batch),
    ]
    if args.no_serial:
        cmd.append("--no-serial")
    # Run from DIR: ``-m`` puts the working directory first on sys.path, and
    # from this tree it would shadow ``tree``'s node.
    done = subprocess.run(
        cmd,
        env={**os.environ, "PYTHONPATH": path},
        cwd=args.work,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    expected = Path(tree or here).resolve() / "node"
    if Path(result["node"]) != expected:
        raise RuntimeError(f"the child ran {result['node']}, not {expected}")
    return result


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Runs of ``args.against``'s apply and this tree's, alternately, on the
    same messages; the median of each figure."""
    prepare(args.work, args.records)
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    load = [round(os.getloadavg()[0], 2)]
    for _ in range(args.repeat):
        runs["before"].append(_child(args.against, args))
        runs["after"].append(_child(None, args))
    load.append(round(os.getloadavg()[0], 2))
    out: dict[str, Any] = {"runs": args.repeat, "load_average_1m": load}
    for side, results in runs.items():
        out[side] = {k: statistics.median(r[k] for r in results) for k in results[0] if k != "node"}
    return out


BEGIN, END = "<!-- apply-writer -->", "<!-- /apply-writer -->"


def _section(result: dict[str, Any], against: str) -> str:
    before, after = result["before"], result["after"]
    rows = [
        ("writer events/s (checks done beforehand)", "writer_events_per_s"),
        ("writer CPU us an event", "writer_cpu_us"),
        ("serial events/s (checks in the writer)", "serial_events_per_s"),
        ("serial CPU us an event", "serial_cpu_us"),
        ("redelivery events/s (all duplicates)", "redelivery_events_per_s"),
        ("redelivery CPU us an event", "redelivery_cpu_us"),
    ]

    def shown(key: str, value: float) -> str:
        return f"{value:,.1f}" if key.endswith("_us") else f"{round(value):,}"

    load = result["load_average_1m"]
    lines = [
        "## The aggregator's writer, before and after batching its reads and writes",
        "",
        f"Written by `python -m bench.apply_writer DIR --against OLD_TREE` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, a side-by-side measurement "
        f"(issue 20): the apply of {against} (two SELECTs and one INSERT or upsert per table "
        f"for each event) and this tree's (one query per table for a slice's digests and "
        f"heads, one `executemany` per table) applying the same "
        f"{round(after['messages']):,} EncounterRecord events in poll batches of "
        f"{round(after['batch']):,} into a fresh store, without Kafka, one after the "
        f"other, {result['runs']} run(s) each (medians). The machine's 2 cores were shared "
        f"with other helpers' work (load average {load[0]} -> {load[1]}), so the rates "
        "vary from run to run; the CPU figures are steadier.",
        "",
        "| measure | before | after |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {label} | {shown(key, before[key])} | {shown(key, after[key])} |"
        for label, key in rows
        if key in before and key in after
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apply_writer")
    parser.add_argument("work", type=Path)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-serial", action="store_true", help="time the writer alone")
    parser.add_argument("--against", type=Path, help="an older tree holding node/ to compare")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="with --against: into RESULTS.md")
    parser.add_argument("--label", help="what --against is, for RESULTS.md (default: its path)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.against is None:
        print(
            json.dumps(run(args.work, args.records, args.batch, args.profile, not args.no_serial))
        )
        return
    result = compare(args)
    print(json.dumps(result))
    if args.write:
        from bench.sections import write_section

        write_section(
            BEGIN,
            END,
            _section(result, args.label or str(args.against)),
            before="<!-- privacy-utility -->",
        )


if __name__ == "__main__":
    main()
