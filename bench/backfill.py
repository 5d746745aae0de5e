"""Child processes of the backfill benchmark, so that peak memory is the
backfill's own and not the generator's.

    python -m bench.backfill generate FILE RECORDS
    python -m bench.backfill run DIR FILE BOOTSTRAP OUT.json
"""

from __future__ import annotations

import csv
import json
import sys
import time
from datetime import date
from pathlib import Path

from bench.machine import own_peak_mb
from node.demo.synth import COLUMNS, generate_encounters
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish

CHUNK = 50_000


def generate(path: Path, records: int) -> None:
    """Five years of Panama's records, written chunk by chunk."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for i in range(0, records, CHUNK):
            rows = generate_encounters(
                "PAN", min(CHUNK, records - i), seed=1000 + i, start=date(2020, 1, 6), weeks=260
            )
            for r in rows:
                r["record_id"] = f"{r['record_id']}-{i // CHUNK}"
                r["document_number"] = f"{r['document_number']}{i // CHUNK}"
            writer.writerows(rows)


def run(base: Path, path: Path, bootstrap: str, out: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    home = init_member(
        base / "pan", "PAN", bootstrap=bootstrap, topic=f"bench.backfill.{int(time.time())}"
    )
    started = time.perf_counter()
    report = ingest(home, path, stage=False)
    ingest_s = time.perf_counter() - started
    ingest_peak = own_peak_mb()
    started = time.perf_counter()
    result = publish(home)
    publish_s = time.perf_counter() - started
    peak_mb = own_peak_mb()
    out.write_text(
        json.dumps(
            {
                "records": report.rows,
                "stored": report.stored,
                "rejected": report.rejected_rows,
                "ingest_seconds": round(ingest_s, 1),
                "ingest_peak_mb": round(ingest_peak),
                "publish_seconds": round(publish_s, 1),
                "events_published": result.drain.acknowledged,
                "backfill_seconds": round(ingest_s + publish_s, 1),
                "backfill_peak_mb": round(peak_mb),
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        run(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
