"""The bench's peak-memory figures are the measured process's own.

Linux carries ``ru_maxrss`` across fork and exec: a child started by a large
process reports the parent's peak as its own. The bench's rebuild and
backfill children did (466 MB each, the bench's own), so a memory target
could have been met or missed by the parent's size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHILD = """
import json, sys
from bench.machine import own_peak_mb
before = own_peak_mb()
block = bytearray(int(sys.argv[1]) * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
print(json.dumps([before, own_peak_mb()]))
"""


def _child_peaks(allocate_mb: int) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(allocate_mb)],
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    before, after = json.loads(done.stdout)
    return float(before), float(after)


def test_a_child_of_a_large_process_reports_its_own_peak_only() -> None:
    ballast = bytearray(300 * 1024 * 1024)  # this process: over 300 MB resident
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    before, after = _child_peaks(64)
    assert before < 150, before  # an interpreter and the bench's imports, not 300 MB
    assert after >= before + 60, (before, after)  # what the child itself touched
    del ballast
