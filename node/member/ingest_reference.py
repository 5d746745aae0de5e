"""Read reference-data files (CSV, JSON or JSON Lines), validate, store.

The same discipline as encounter files: every bad record is reported as
``FILE:LINE: field 'NAME': reason`` (for JSON, LINE is where the record's
object starts) and kept in a rejects file in the home; good records are
stored. A node only holds its own country's records: a row for another
country is rejected on its owner field.

Which kind a file holds is given with ``--kind`` or detected: from a CSV
header, or from the keys of the first JSON object. Each kind has a field no
other kind has (``entry_id``, ``mission_id``, ``advisory_id``,
``focal_point_id``, ``report_id``; encounter files have ``record_id``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from node.csvfile import read_records
from node.errors import FileFormatError, InputError
from node.limits import MAX_REFERENCE_JSON_BYTES, read_limited
from node.member.ingest import (
    IngestReport,
    Row,
    describe_unknown,
    looks_like_a_name,
    open_regular,
    open_rows,
    rejections_from,
)
from node.member.rejects import Rejection, write_rejects
from node.model.records import ENCOUNTER_COLUMNS
from node.model.reference import BY_FILE_KIND, REFERENCE_MODELS, ReferenceItem
from node.store.reference import ReferenceStore

ENCOUNTERS = "encounters"
#: Every value ``--kind`` accepts.
FILE_KINDS: tuple[str, ...] = (ENCOUNTERS, *BY_FILE_KIND)
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


@dataclass
class ReferenceIngestReport(IngestReport):
    """An ingest report that also says the kind and how many records changed."""

    kind: str = ""
    updated: int = 0

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "kind": self.kind, "updated": self.updated}


def template_header(file_kind: str) -> str:
    if file_kind == ENCOUNTERS:
        return ",".join(ENCOUNTER_COLUMNS)
    return ",".join(_model(file_kind).columns())


def _model(file_kind: str) -> type[ReferenceItem]:
    try:
        return BY_FILE_KIND[file_kind]
    except KeyError:
        raise InputError(f"unknown kind {file_kind!r}; use one of {list(FILE_KINDS)}") from None


#: Columns only encounter files have: a file with any of them is an encounter
#: file, so a broken one gets the encounter header's own located error.
_ENCOUNTER_ONLY = frozenset(ENCOUNTER_COLUMNS) - {"sex", "nationality"}


def _kind_of_keys(keys: set[str], file: str) -> str:
    for model in REFERENCE_MODELS:
        if model.ID_FIELD in keys:
            return model.FILE_KIND
    if keys & _ENCOUNTER_ONLY:
        return ENCOUNTERS
    raise InputError(
        "cannot tell what kind of file this is (no record_id, entry_id, mission_id, "
        "advisory_id, focal_point_id or report_id); give --kind",
        file=file,
        line=1,
    )


def detect_kind(path: Path) -> str:
    """The file kind of ``path``, from its CSV header or first JSON object."""
    name = str(path)
    try:
        if path.suffix.lower() in _JSON_SUFFIXES:
            records = _json_records(_json_text(path, errors="replace"), name)
            if not records:
                raise InputError("no records in the file", file=name, line=1)
            first = records[0][1]
            return _kind_of_keys(set(first) if isinstance(first, dict) else set(), name)
        with open_regular(path) as raw:
            header = next(read_records(raw), None)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from exc
    if header is None:
        raise InputError("file is empty: expected a header row", file=name, line=1)
    if header.fields == (b"",):
        raise InputError("line 1 is blank: expected a header row", file=name, line=1)
    names = {f.decode("utf-8", errors="replace").strip().lstrip("\ufeff") for f in header.fields}
    return _kind_of_keys(names, name)


def _json_text(path: Path, errors: str = "strict") -> str:
    """A JSON reference file, read whole: refused over MAX_REFERENCE_JSON_BYTES
    before any of it is parsed."""
    name = str(path)
    try:
        data = read_limited(
            path, limit=MAX_REFERENCE_JSON_BYTES, what="a reference file", error=FileFormatError
        )
    except FileFormatError as exc:
        raise InputError(exc.reason, file=name) from exc
    except FileNotFoundError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from exc
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError("not valid UTF-8", file=name, line=line) from exc


def _json_records(text: str, file: str) -> list[tuple[int, Any]]:
    """(line, value) of each record of a JSON array or a JSON Lines file.
    A value nested too deeply for Python's JSON parser is a located error."""
    try:
        return _json_records_unguarded(text, file)
    except RecursionError as exc:
        raise InputError("JSON nested too deeply to read", file=file) from exc


def _json_records_unguarded(text: str, file: str) -> list[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    text = text.lstrip("\ufeff")
    start = len(text) - len(text.lstrip())
    out: list[tuple[int, Any]] = []

    def line_at(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def fail(pos: int, exc: json.JSONDecodeError) -> InputError:
        return InputError(f"malformed JSON: {exc.msg}", file=file, line=line_at(exc.pos or pos))

    if text[start : start + 1] == "[":
        pos = start + 1
        while True:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if text[pos : pos + 1] == "]":
                if text[pos + 1 :].strip():
                    raise InputError("data after the closing ]", file=file, line=line_at(pos))
                return out
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise fail(pos, exc) from exc
            out.append((line_at(pos), value))
            pos = end
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if text[pos : pos + 1] == ",":
                pos += 1
            elif text[pos : pos + 1] != "]":
                raise InputError("expected , or ] between records", file=file, line=line_at(pos))
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON: {exc.msg}", file=file, line=number) from exc
    return out


def _rows(path: Path, model: type[ReferenceItem]) -> list[Row]:
    name = str(path)
    if path.suffix.lower() in _JSON_SUFFIXES:
        text = _json_text(path)
        out: list[Row] = []
        for line, value in _json_records(text, name):
            if not isinstance(value, dict):
                rejection = Rejection(name, line, None, "expected a JSON object", _kept(value))
                out.append(Row(line, None, None, rejection))
            else:
                out.append(Row(line, None, value))
        return out
    return list(open_rows(path, model.columns(), model.required_columns()))


def ingest_reference(
    path: Path,
    file_kind: str,
    store: ReferenceStore,
    rejects_dir: Path,
    country: str,
) -> ReferenceIngestReport:
    """Validate and store one reference file for the node of ``country``."""
    model = _model(file_kind)
    report = ReferenceIngestReport(file=str(path), kind=file_kind)
    good: list[ReferenceItem] = []
    seen: dict[str, int] = {}
    for record in _rows(path, model):
        report.rows += 1
        line, span = record.line, record.span
        if record.rejection is not None:
            report.rejected.append(record.rejection)
            continue
        if record.values is None:
            report.blank += 1
            continue
        raw = {k: v for k, v in record.values.items()}
        unknown = [k for k in raw if k not in model.model_fields]
        if unknown:
            # Named only when it looks like a field name: a key can be data.
            named = unknown[0] if looks_like_a_name(unknown[0]) else None
            reason = (
                "unknown field"
                if named
                else describe_unknown(unknown, list(model.model_fields), "field")
            )
            report.rejected.append(Rejection(str(path), line, named, reason, _safe(raw), span))
            continue
        try:
            item = model.model_validate(raw)
        except ValidationError as exc:
            for r in rejections_from(exc, str(path), line):
                report.rejected.append(
                    Rejection(r.file, r.line, r.field, r.reason, _safe(raw), span)
                )
            continue
        if item.owner != country:
            report.rejected.append(
                Rejection(
                    str(path),
                    line,
                    model.OWNER_FIELD,
                    f"this node submits {country}'s records only",
                    _safe(raw),
                    span,
                )
            )
            continue
        if item.item_id in seen:
            report.rejected.append(
                Rejection(
                    str(path),
                    line,
                    model.ID_FIELD,
                    f"{model.ID_FIELD} repeats line {seen[item.item_id]}",
                    _safe(raw),
                    span,
                )
            )
            continue
        seen[item.item_id] = line
        good.append(item)
    if good:
        counts = store.store(good, path.name)
        report.stored = counts.new + counts.updated
        report.updated = counts.updated
        report.duplicates = counts.unchanged
    if report.rejected:
        report.rejects_file = write_rejects(rejects_dir, path, report.rejected)
    return report


def _kept(value: Any) -> dict[str, str]:
    """A JSON record that is not an object, kept in the rejects file as it was."""
    return {"": json.dumps(value, ensure_ascii=False)}


def _safe(raw: dict[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
