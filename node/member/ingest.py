"""Read raw encounter files, validate every row, keep the good ones.

A bad row never costs the good rows: each rejected row is reported with its
file, line, field and reason, and written, with the record exactly as the file
had it, to a rejects file beside the node's store (raw data stays home, so the
rejects file stays home too, readable by its owner only). Messages name fields
and reasons, never the rejected values.

Every record of a file is accounted for once: ``rows`` = ``stored`` +
``duplicates`` + ``rejected`` + ``blank``; anything that is not a record (an
unreadable file, a broken header) is one file-level ``InputError``.
"""

from __future__ import annotations

import difflib
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from node.csvfile import MAX_FIELD_BYTES, TEXT_AFTER_QUOTE, Record, read_records
from node.errors import InputError
from node.member.rejects import Rejection, write_rejects
from node.model.records import ENCOUNTER_COLUMNS, REQUIRED_COLUMNS, EncounterRecord
from node.policy.places import Gazetteer
from node.store.node_store import NodeStore
from node.store.raw_records import IngestCounts

__all__ = ["FUTURE_SKEW", "MAX_FIELD_BYTES", "IngestReport", "Rejection", "ingest_encounters"]

BATCH_SIZE = 5_000
#: How many lines of records at unknown places a report lists.
UNKNOWN_PLACE_LINES = 20
#: How far after the ingest time (UTC) an encounter may be dated: a day, for
#: members whose local date is ahead of UTC's. Anything later is a mistyped
#: date, and would publish a cell for a week that has not happened.
FUTURE_SKEW = timedelta(days=1)


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
    blank: int = 0  # records with no value in any field
    rejects_file: Path | None = None
    staged: int = 0  # events staged to the outbox in the same transaction
    staging_waits: str | None = None  # why nothing was staged (a broken policy)
    #: Records (stored or stored before) at a place the country's gazetteer does
    #: not list, so a policy publishing their province or border sector sends
    #: ``_U``; None when no gazetteer was given (reference files).
    unknown_places: int | None = None
    unknown_place_lines: list[int] = field(default_factory=list)  # the first few
    places_file: str | None = None  # the gazetteer the places were looked up in

    @property
    def rejected_rows(self) -> int:
        return len({r.line for r in self.rejected})

    def as_dict(self) -> dict[str, object]:
        places: dict[str, object] = (
            {}
            if self.unknown_places is None  # not looked up: a reference file
            else {
                "unknown_places": self.unknown_places,
                "unknown_place_lines": self.unknown_place_lines,
                "places_file": self.places_file,
            }
        )
        return {
            "file": self.file,
            "rows": self.rows,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected_rows,
            "blank": self.blank,
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
            "staged": self.staged,
            "staging_waits": self.staging_waits,
            **places,
            "errors": [r.located() for r in self.rejected[:50]],
        }


def unknown_places_note(report: IngestReport) -> str:
    """One line for the operator: how many records are at places the gazetteer
    does not list, and where in the file (line numbers, never the places)."""
    lines = ", ".join(str(n) for n in report.unknown_place_lines)
    more = "" if len(report.unknown_place_lines) >= (report.unknown_places or 0) else ", …"
    return (
        f"{report.unknown_places} record(s) at a place {report.places_file} does not list "
        f"(lines {lines}{more}): stored; a policy publishing the province or border "
        "sector sends _U for them. Add the places to the gazetteer."
    )


def template_header() -> str:
    return ",".join(ENCOUNTER_COLUMNS)


def rejections_from(exc: ValidationError, file: str, line: int) -> list[Rejection]:
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


@dataclass(frozen=True)
class Row:
    """One record of an input file: its values, or why it was rejected, or
    neither (a blank record: no value in any field)."""

    line: int
    span: tuple[int, int] | None  # byte offsets of the record in the file
    values: Any = None  # dict[str, str] for CSV; any JSON value for JSON files
    rejection: Rejection | None = None


def open_rows(
    path: Path,
    columns: tuple[str, ...] = ENCOUNTER_COLUMNS,
    required: tuple[str, ...] = REQUIRED_COLUMNS,
) -> Iterator[Row]:
    """Every data record of a CSV file, header checked first. Lines are the
    physical line numbers of each record's start, header is line 1; records
    are split by node.csvfile, so a broken field costs its record only.
    ``columns`` are those the file may have, ``required`` those it must have
    (encounter files by default)."""
    name = str(path)
    fh = open_regular(path)
    with fh:
        records = read_records(fh, MAX_FIELD_BYTES)
        try:
            first = next(records, None)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=name) from exc
        if first is None:
            raise InputError("file is empty: expected a header row", file=name, line=1)
        if first.problem is not None:
            raise InputError(f"unreadable header: {first.problem}", file=name, line=1)
        try:
            header = [f.decode("utf-8").strip().lstrip("\ufeff") for f in first.fields]
        except UnicodeDecodeError:
            raise InputError("header is not valid UTF-8", file=name, line=1) from None
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
        for record in records:
            yield _row_of(record, header, name)


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened to read bytes; a file-level error unless it is a regular
    file (a pipe would block, and cannot be read twice)."""
    name = str(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError("not a regular file (ingest reads it twice)", file=name)
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from exc


def _row_of(record: Record, header: list[str], name: str) -> Row:
    line, span = record.line, (record.start, record.end)

    def reject(field: str | None, reason: str) -> Row:
        return Row(line, span, None, Rejection(name, line, field, reason, span=span))

    # A record over several lines that breaks is most likely a stray quote
    # that closed far too late: say which lines it joined.
    last = line + record.lines - 1
    joined = f" (its quotes join lines {line}-{last})" if record.lines > 1 else ""
    if record.problem is not None:
        at = record.problem_field
        reason = record.problem + (joined if record.problem == TEXT_AFTER_QUOTE else "")
        return reject(header[at] if at is not None and at < len(header) else None, reason)
    if all(not f.strip() for f in record.fields):
        return Row(line, span)
    if len(record.fields) != len(header):
        return reject(None, f"expected {len(header)} fields, found {len(record.fields)}{joined}")
    values: dict[str, str] = {}
    for column, raw in zip(header, record.fields, strict=True):
        try:
            values[column] = raw.decode("utf-8")
        except UnicodeDecodeError:
            return reject(column, "not valid UTF-8")
    nul = next((k for k, v in values.items() if "\x00" in v), None)
    if nul is not None:
        return reject(nul, "contains a NUL byte")
    return Row(line, span, values)


def ingest_encounters(
    path: Path,
    store: NodeStore,
    rejects_dir: Path,
    *,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
    places: Gazetteer | None = None,
    places_file: str | None = None,
) -> IngestReport:
    """Validate and store an encounter CSV file; see the module docstring.
    ``now`` is the ingest time future encounter dates are measured from.
    With ``places`` (the country's gazetteer, read from ``places_file``), the
    records at a place it does not list are counted (``unknown_places``)."""
    report = IngestReport(file=str(path))
    if places is not None:
        report.unknown_places = 0
        report.places_file = places_file
    unknown: dict[str, int] = {}  # record_id -> line, of the batch's records at unknown places
    name = str(path)
    latest = ((now or datetime.now(UTC)).astimezone(UTC) + FUTURE_SKEW).date()
    batch: list[EncounterRecord] = []
    held: dict[str, Row] = {}  # record_id -> the row of the record in the batch
    seen: dict[str, int] = {}  # record_id -> the line it was first read on

    def flush() -> None:
        counts: IngestCounts = store.store_encounters(batch, path.name)
        report.stored += counts.stored
        report.duplicates += counts.duplicates
        for record_id in counts.conflicts:
            unknown.pop(record_id, None)  # rejected: not a record of this node
            row = held[record_id]
            report.rejected.append(
                Rejection(
                    name,
                    row.line,
                    "record_id",
                    "this record_id was stored before with different content",
                    row.values,
                    row.span,
                )
            )
        if report.unknown_places is not None:
            report.unknown_places += len(unknown)
            room = UNKNOWN_PLACE_LINES - len(report.unknown_place_lines)
            report.unknown_place_lines += sorted(unknown.values())[: max(room, 0)]
        batch.clear()
        held.clear()
        unknown.clear()

    for row in open_rows(path):
        report.rows += 1
        if row.rejection is not None:
            report.rejected.append(row.rejection)
        elif row.values is None:
            report.blank += 1
        else:
            outcome = _encounter(row, latest, seen)
            if isinstance(outcome, EncounterRecord):
                held[outcome.record_id] = row
                seen[outcome.record_id] = row.line
                if places is not None and outcome.encounter_place not in places:
                    unknown[outcome.record_id] = row.line
                batch.append(outcome)
            else:
                report.rejected.extend(
                    Rejection(name, row.line, f, r, row.values, row.span) for f, r in outcome
                )
        if len(batch) >= BATCH_SIZE:
            flush()
        if progress is not None and report.rows % 1000 == 0:
            progress(report.rows)
    if batch:
        flush()
    if report.rejected:
        report.rejects_file = write_rejects(rejects_dir, path, report.rejected)
    return report


def _encounter(
    row: Row, latest: date, seen: dict[str, int]
) -> EncounterRecord | list[tuple[str | None, str]]:
    """The row's record, or its (field, reason) rejections."""
    try:
        record = EncounterRecord.model_validate(row.values)
    except ValidationError as exc:
        return [(r.field, r.reason) for r in rejections_from(exc, "", row.line)]
    if record.encounter_date > latest:
        return [
            (
                "encounter_date",
                f"encounter_date is more than {FUTURE_SKEW.days} day after the ingest time",
            )
        ]
    if record.record_id in seen:
        return [("record_id", f"record_id repeats line {seen[record.record_id]}")]
    return record
