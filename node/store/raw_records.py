"""A member's raw records in its store: stored once at ingest, read by the
planners, never sent. ``RawRecords`` is a part of ``NodeStore``, on the
store's connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from node.model.records import ENCOUNTER_COLUMNS, EncounterRecord
from node.store.sqlite import transaction

_RAW_COLUMNS = ENCOUNTER_COLUMNS


@dataclass(frozen=True)
class IngestCounts:
    stored: int
    duplicates: int
    conflicts: list[str]  # record_ids stored before with different content


def _raw_tuple(record: EncounterRecord) -> tuple[str | None, ...]:
    values = record.model_dump()
    return tuple(
        v.isoformat() if isinstance(v, date) else v for v in (values[c] for c in _RAW_COLUMNS)
    )


class RawRecords:
    """The raw-record queries of ``NodeStore`` (its ``raw_encounter`` table)."""

    _conn: sqlite3.Connection

    def store_encounters(self, records: Iterable[EncounterRecord], source: str) -> IngestCounts:
        """Store records in one transaction. A record id seen before is skipped
        when its content is identical and reported as a conflict otherwise."""
        stored = duplicates = 0
        conflicts: list[str] = []
        now = time.time()
        placeholders = ",".join("?" * (len(_RAW_COLUMNS) + 2))
        columns = ",".join((*_RAW_COLUMNS, "source_file", "ingested_at"))
        select = f"SELECT {','.join(_RAW_COLUMNS)} FROM raw_encounter WHERE record_id = ?"
        with transaction(self._conn) as conn:
            for record in records:
                row = _raw_tuple(record)
                cur = conn.execute(
                    f"INSERT OR IGNORE INTO raw_encounter ({columns}) VALUES ({placeholders})",
                    (*row, source, now),
                )
                if cur.rowcount == 1:
                    stored += 1
                    continue
                existing = conn.execute(select, (record.record_id,)).fetchone()
                if tuple(existing) == row:
                    duplicates += 1
                else:
                    conflicts.append(record.record_id)
        return IngestCounts(stored, duplicates, conflicts)

    def count_encounters(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM raw_encounter").fetchone()[0])

    def encounter_places(self) -> dict[str, int]:
        """How many stored records name each place (the gazetteer's check)."""
        cur = self._conn.execute(
            "SELECT encounter_place, count(*) FROM raw_encounter GROUP BY encounter_place"
        )
        return {place: int(n) for place, n in cur}

    def iter_flow_inputs(self) -> Iterator[tuple[str, str, date, date, str | None]]:
        """Only the fields flow statistics need; no identifying values."""
        cur = self._conn.execute(
            "SELECT nationality, sex, date_of_birth, encounter_date, previous_country "
            "FROM raw_encounter"
        )
        fromiso = date.fromisoformat
        for nationality, sex, born, met, previous in cur:
            yield nationality, sex, fromiso(born), fromiso(met), previous

    def identifying_values(self) -> Iterator[tuple[str, str, str, str]]:
        """(document_number, family_name, given_names, date_of_birth) of every record,
        for the egress guard."""
        yield from self._conn.execute(
            "SELECT document_number, family_name, given_names, date_of_birth FROM raw_encounter"
        )

    def iter_encounter_inputs(
        self, page: int = 2_000, *, after: str = "", upto: str | None = None
    ) -> Iterator[tuple[str, str, date, str, str, date, str, str | None]]:
        """(record_id, document_number, date_of_birth, sex, nationality,
        encounter_date, encounter_place, previous_country): what a pseudonymised
        EncounterRecord may draw on. Names and health notes are not read.

        Records with ``after`` < record_id <= ``upto`` (all by default), read a
        page at a time in record-id order with no statement left open between
        pages, so that a publish can commit each chunk it stages while it reads on."""
        fromiso = date.fromisoformat
        bound = "" if upto is None else " AND record_id <= ?"
        while True:
            rows = self._conn.execute(
                "SELECT record_id, document_number, date_of_birth, sex, nationality, "
                "encounter_date, encounter_place, previous_country FROM raw_encounter "
                f"WHERE record_id > ?{bound} ORDER BY record_id LIMIT ?",
                (after, page) if upto is None else (after, upto, page),
            ).fetchall()
            for rid, doc, born, sex, nat, met, place, previous in rows:
                yield rid, doc, fromiso(born), sex, nat, fromiso(met), place, previous
            if len(rows) < page:
                return
            after = rows[-1][0]

    def encounter_split(self, parts: int) -> list[tuple[str, str | None]]:
        """``parts`` record-id ranges (after, upto] of about equal size that
        together cover every stored record, for staging in parallel."""
        total = self.count_encounters()
        bounds: list[str] = []
        for i in range(1, parts):
            row = self._conn.execute(
                "SELECT record_id FROM raw_encounter ORDER BY record_id LIMIT 1 OFFSET ?",
                (total * i // parts,),
            ).fetchone()
            if row is not None and (not bounds or row[0] > bounds[-1]):
                bounds.append(row[0])
        edges: list[str | None] = ["", *bounds, None]
        return [(str(edges[i]), edges[i + 1]) for i in range(len(edges) - 1)]

    def record_ids(self) -> Iterator[str]:
        for (rid,) in self._conn.execute("SELECT record_id FROM raw_encounter"):
            yield rid
