"""Writing one benchmark's part of bench/RESULTS.md and bench/results.json,
keeping what the other benchmarks wrote there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def write_section(start: str, end: str, body: str, *, before: str | None = None) -> None:
    """Put ``body`` between the markers ``start`` and ``end`` of RESULTS.md:
    in place of what they held, or, the first time, ahead of the marker
    ``before`` when the file has it, else at the end."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    elif before is not None and before in text:
        head, rest = text.split(before, 1)
        text = head + section + "\n\n" + before + rest
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def store_results(updates: dict[str, Any], *, details: dict[str, Any] | None = None) -> None:
    """Set top-level keys (and keys of ``details``) of results.json, keeping the rest."""
    path = HERE / "results.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(updates)
    if details:
        data.setdefault("details", {}).update(details)
    path.write_text(json.dumps(data, indent=2) + "\n")
