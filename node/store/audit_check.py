"""Reading the audit log (``node.store.audit``) back: its entries in chain order,
verifying the chain against its head file and anchors, and exporting it for an
auditor."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from node.errors import StoreError
from node.store.audit import (
    FIELDS,
    GENESIS,
    SCHEMA,
    AuditEntry,
    AuditRecord,
    entry_hash,
    head_path,
)
from node.store.sqlite import connect

# -- reading, verifying, exporting ---------------------------------------------------------


def _open(db_path: Path) -> sqlite3.Connection:
    if not db_path.is_file():
        raise StoreError(f"no store at {db_path}")
    return connect(db_path, SCHEMA)


def _entries(conn: sqlite3.Connection) -> Iterator[AuditEntry]:
    # Physical row order, not ORDER BY seq: a swapped pair must show up as one.
    cur = conn.execute(f"SELECT {','.join(FIELDS)} FROM audit_log ORDER BY rowid")
    for row in cur:
        yield AuditEntry(*row)


def read_entries(db_path: Path) -> list[AuditEntry]:
    conn = _open(db_path)
    try:
        return list(_entries(conn))
    finally:
        conn.close()


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    head_seq: int
    head_hash: str
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _recompute(entry: AuditEntry) -> str:
    record = AuditRecord(
        entry.entry,
        entry.digest,
        entry.event_id,
        entry.producer,
        entry.subject,
        entry.revision,
        entry.policy_version,
        entry.reason,
    )
    try:
        return entry_hash(entry.prev_hash, entry.seq, entry.at, record)
    except (ValueError, TypeError):
        return ""  # a prev_hash that is not hex cannot match


def _parse_anchor(anchor: str) -> tuple[int, str]:
    seq, sep, digest = anchor.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise StoreError(f"an anchor is SEQ:SHA256HEX, not {anchor!r}")
    return int(seq), digest.lower()


def verify(
    db_path: Path, anchors: Sequence[str] = (), *, accept_behind: bool = False
) -> VerifyReport:
    """Check the whole chain; the report names the first bad entry, if any.

    ``anchors`` are ``seq:entry_hash`` pairs recorded earlier (e.g. by an
    auditor from a previous verify): each must still be in the chain. Entries
    after the head file's are a failure (they may be forged) unless
    ``accept_behind``: then they are a note.
    """
    expected = dict(_parse_anchor(a) for a in anchors)
    conn = _open(db_path)
    try:
        entries = list(_entries(conn))
    finally:
        conn.close()
    prev = GENESIS
    count = 0
    notes: list[str] = []

    def bad(seq: int, problem: str) -> VerifyReport:
        return VerifyReport(count, count, prev, False, seq, problem, tuple(notes))

    for position, entry in enumerate(entries, start=1):
        if entry.seq != position:
            if entry.seq > position:
                return bad(position, f"entry {position} is missing (next is {entry.seq})")
            return bad(entry.seq, f"entry {entry.seq} is out of order (at position {position})")
        if entry.prev_hash != prev:
            return bad(entry.seq, f"entry {entry.seq} does not chain onto entry {entry.seq - 1}")
        if _recompute(entry) != entry.entry_hash:
            return bad(entry.seq, f"entry {entry.seq} was altered (its hash does not match)")
        if entry.seq in expected and expected.pop(entry.seq) != entry.entry_hash:
            return bad(entry.seq, f"entry {entry.seq} differs from the anchor recorded for it")
        prev = entry.entry_hash
        count = position
    if expected:
        seq = min(expected)
        return bad(seq, f"entry {seq} named by an anchor is no longer in the log")
    head = _read_head(db_path)
    if head is not None:
        head_seq, head_hash = head
        if head_seq > count:
            return bad(
                count + 1,
                f"log truncated: the head file names entry {head_seq}, the log ends at {count}",
            )
        at_head = entries[head_seq - 1].entry_hash if head_seq else GENESIS
        if at_head != head_hash:
            return bad(head_seq, f"entry {head_seq} differs from the head file")
        if head_seq < count:
            behind = count - head_seq
            if not accept_behind:
                return bad(
                    head_seq + 1,
                    f"{behind} entries after the head file's entry {head_seq}: appended by "
                    "someone who could write the database but not the head file, or left by "
                    "a crash between a commit and the head-file write; if you know it was a "
                    "crash, accept them with --accept-behind",
                )
            notes.append(f"head file is {behind} entries behind; accepted (--accept-behind)")
    elif count:
        notes.append("no head file: truncation at the end cannot be detected")
    return VerifyReport(count, count, prev, True, None, None, tuple(notes))


def read_head(db_path: Path) -> tuple[int, str] | None:
    """(seq, entry_hash) the head file records, or None without one."""
    return _read_head(db_path)


def _read_head(db_path: Path) -> tuple[int, str] | None:
    path = head_path(db_path)
    try:
        data = json.loads(path.read_text(encoding="ascii"))
        return int(data["seq"]), str(data["entry_hash"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"the audit head {path} is unreadable: {exc}") from exc


def export(db_path: Path, out: IO[str], fmt: str = "jsonl") -> int:
    """Write every entry, in chain order, as JSON lines or CSV. Returns the count."""
    if fmt not in ("jsonl", "csv"):
        raise StoreError(f"unknown export format {fmt!r}")
    entries = read_entries(db_path)
    if fmt == "jsonl":
        for entry in entries:
            out.write(json.dumps(asdict(entry), sort_keys=False) + "\n")
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(FIELDS)
        for entry in entries:
            writer.writerow(["" if v is None else v for v in asdict(entry).values()])
        out.write(buffer.getvalue())
    return len(entries)
