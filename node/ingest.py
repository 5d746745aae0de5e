"""Read raw encounter files, validate every row, keep the good ones.

A bad row never costs the good rows: each rejected row is reported with its
file, line, field and reason, and written to a rejects file beside the node's
store (raw data stays home, so the rejects file stays home too). Messages name
fields and reasons, never the rejected values.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from node.errors import InputError
from node.files import open_private, private_dir
from node.model.records import ENCOUNTER_COLUMNS, REQUIRED_COLUMNS, EncounterRecord
from node.store.node_store import IngestCounts, NodeStore

#: Generous but bounded: a field larger than this is a broken file, not a name.
MAX_FIELD_BYTES = 64 * 1024
BATCH_SIZE = 5_000


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int
    field: str | None
    reason: str
    row: dict[str, str] | None = None

    def located(self) -> str:
        return InputError(self.reason, file=self.file, line=self.line, field=self.field).located()


def describe_unknown(names: Sequence[str], known: Sequence[str], what: str) -> str:
    """An error for unknown column (or field) names that never repeats one
    unless it is a near-miss of a known name (a typo such as 'nationalty'):
    a file without its header row has a data row where the names should be,
    and that row is a person's record."""
    hints = []
    for name in names:
        match = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if match and looks_like_a_name(name):
            hints.append(f"{name!r} (did you mean {match[0]!r}?)")
    others = len(names) - len(hints)
    text = f"{len(names)} unknown {what}{'s' if len(names) > 1 else ''}"
    if hints:
        text += ": " + ", ".join(hints) + (f" and {others} more" if others else "")
    elif what == "column":
        text += " (is the header row missing?)"
    return text


_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def looks_like_a_name(text: str) -> bool:
    """A column or field name as Corredor writes them (lower_snake_case), not
    the kind of text a person's record holds."""
    return _NAME.fullmatch(text) is not None


@dataclass
class IngestReport:
    file: str
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rejects_file: Path | None = None
    staged: int = 0  # events staged to the outbox in the same transaction

    @property
    def rejected_rows(self) -> int:
        return len({r.line for r in self.rejected})

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "rows": self.rows,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected_rows,
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
            "staged": self.staged,
            "errors": [r.located() for r in self.rejected[:50]],
        }


def template_header() -> str:
    return ",".join(ENCOUNTER_COLUMNS)


def _rejections_from(exc: ValidationError, file: str, line: int) -> list[Rejection]:
    out = []
    for err in exc.errors():
        loc = err["loc"]
        out.append(
            Rejection(
                file,
                line,
                str(loc[0]) if loc else None,
                err["msg"].removeprefix("Value error, "),
            )
        )
    return out


def _open_rows(
    path: Path,
    columns: tuple[str, ...] = ENCOUNTER_COLUMNS,
    required: tuple[str, ...] = REQUIRED_COLUMNS,
) -> Iterator[tuple[int, dict[str, str] | None, Rejection | None]]:
    """Yield (line, row, rejection) for each data row. Lines are physical line
    numbers of the row's start, header is line 1. ``columns`` are those the
    file may have, ``required`` those it must have (encounter files by default)."""
    name = str(path)
    csv.field_size_limit(MAX_FIELD_BYTES)
    try:
        fh = path.open("r", encoding="utf-8", errors="surrogateescape", newline="")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from exc
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError("file is empty: expected a header row", file=name, line=1) from None
        except csv.Error as exc:
            raise InputError(f"unreadable header: {exc}", file=name, line=1) from exc
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in required if c not in header]
        unknown = [c for c in header if c not in columns]
        if missing or unknown or len(set(header)) != len(header):
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if unknown:
                parts.append(describe_unknown(unknown, columns, "column"))
            if len(set(header)) != len(header):
                parts.append("repeated column names")
            raise InputError(
                "; ".join(parts) + f" (expected: {','.join(columns)})", file=name, line=1
            )
        while True:
            line = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield line, None, Rejection(name, line, None, f"malformed CSV: {exc}")
                continue
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                yield (
                    line,
                    None,
                    Rejection(
                        name, line, None, f"expected {len(header)} fields, found {len(values)}"
                    ),
                )
                continue
            row = dict(zip(header, values, strict=True))
            bad = next((k for k, v in row.items() if _not_utf8(v)), None)
            if bad is not None:
                yield line, None, Rejection(name, line, bad, "not valid UTF-8")
                continue
            nul = next((k for k, v in row.items() if "\x00" in v), None)
            if nul is not None:
                yield line, None, Rejection(name, line, nul, "contains a NUL byte")
                continue
            yield line, row, None


def _not_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _write_rejects(directory: Path, source: Path, rejected: list[Rejection]) -> Path:
    private_dir(directory)  # rejected rows are raw data: 0700 directory, 0600 files
    out = directory / f"{source.name}.{time.strftime('%Y%m%dT%H%M%S')}.rejects.csv"
    with open_private(out, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line", "field", "reason", "row"])
        for r in rejected:
            row = json.dumps(r.row, ensure_ascii=False) if r.row is not None else ""
            writer.writerow([r.line, r.field or "", r.reason, row])
    return out


def ingest_encounters(
    path: Path,
    store: NodeStore,
    rejects_dir: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Validate and store an encounter CSV file; see the module docstring."""
    report = IngestReport(file=str(path))
    batch: list[EncounterRecord] = []
    lines: dict[str, int] = {}

    def flush() -> None:
        counts: IngestCounts = store.store_encounters(batch, path.name)
        report.stored += counts.stored
        report.duplicates += counts.duplicates
        for record_id in counts.conflicts:
            report.rejected.append(
                Rejection(
                    str(path),
                    lines[record_id],
                    "record_id",
                    "this record_id was stored before with different content",
                )
            )
        batch.clear()
        lines.clear()

    for line, row, rejection in _open_rows(path):
        report.rows += 1
        if rejection is not None:
            report.rejected.append(rejection)
        else:
            assert row is not None
            try:
                record = EncounterRecord.model_validate(row)
            except ValidationError as exc:
                for r in _rejections_from(exc, str(path), line):
                    report.rejected.append(Rejection(r.file, r.line, r.field, r.reason, row))
            else:
                if record.record_id in lines:
                    report.rejected.append(
                        Rejection(
                            str(path),
                            line,
                            "record_id",
                            f"record_id repeats line {lines[record.record_id]}",
                            row,
                        )
                    )
                else:
                    lines[record.record_id] = line
                    batch.append(record)
        if len(batch) >= BATCH_SIZE:
            flush()
        if progress is not None and report.rows % 1000 == 0:
            progress(report.rows)
    if batch:
        flush()
    if report.rejected:
        report.rejects_file = _write_rejects(rejects_dir, path, report.rejected)
    return report
