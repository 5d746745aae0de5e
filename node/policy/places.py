"""The gazetteer: where each place a country records encounters at lies, read
from that country's data file.

A policy may let a place out at any level of ``municipality > province >
border_sector > country`` (``encounter_place: generalise to province``);
generalising needs to know which province and border sector a place is in.
That knowledge is data, one CSV file per country under ``policies/places/``
(``<ISO3>.csv``, described in ``policies/places/README.md``)::

    municipality,province,border_sector
    Lajas Blancas,Darién,Darién gap (COL border)

A place the file does not list generalises to ``_U`` (unknown); ``ingest``
and ``preview`` count such records, so a missing row is seen, never silent.
A country without a file has an empty gazetteer: every place is unknown.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from node.errors import PolicyFileError
from node.limits import MIB, read_limited

__all__ = [
    "PLACES_DIR",
    "PLACES_HEADER",
    "Gazetteer",
    "country_gazetteer",
    "load_gazetteer",
    "places_file",
    "unknown_places",
]

#: A place name -> (province, border sector).
Gazetteer = Mapping[str, tuple[str, str]]

#: The directory, under the policies directory, that holds the gazetteers.
PLACES_DIR = "places"
PLACES_HEADER = ("municipality", "province", "border_sector")
#: A gazetteer is a table of places, not a dump: a larger file is a mistake.
MAX_PLACES_BYTES = 4 * MIB


def places_file(policies: Path, country: str) -> Path:
    """Where ``country``'s gazetteer is kept under the policies directory."""
    return policies / PLACES_DIR / f"{country}.csv"


def load_gazetteer(path: Path) -> dict[str, tuple[str, str]]:
    """The places of one gazetteer file. Errors (``PolicyFileError``) name the
    file, the line and the column: a header that is not exactly
    ``municipality,province,border_sector``, a row with another number of
    fields, an empty field, or a place listed twice."""
    name = str(path)
    raw = read_limited(path, limit=MAX_PLACES_BYTES, what="a gazetteer", error=PolicyFileError)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyFileError(f"not UTF-8 (byte {exc.start})", file=name) from exc
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != PLACES_HEADER:
        raise PolicyFileError(f"the header must be {','.join(PLACES_HEADER)}", file=name, line=1)
    places: dict[str, tuple[str, str]] = {}
    first_line: dict[str, int] = {}
    for row in rows:
        line = rows.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(PLACES_HEADER):
            raise PolicyFileError(
                f"{len(row)} fields, the header has {len(PLACES_HEADER)}", file=name, line=line
            )
        cells = [unicodedata.normalize("NFC", cell.strip()) for cell in row]
        for column, cell in zip(PLACES_HEADER, cells, strict=True):
            if not cell:
                raise PolicyFileError("empty", file=name, line=line, key=column)
        place, province, sector = cells
        if place in places:
            raise PolicyFileError(
                f"{place!r} is listed on line {first_line[place]} already",
                file=name,
                line=line,
                key="municipality",
            )
        places[place] = (province, sector)
        first_line[place] = line
    return places


def country_gazetteer(policies: Path, country: str) -> dict[str, tuple[str, str]]:
    """``country``'s gazetteer from the policies directory; empty when the
    country ships no file (every place is then unknown, and counted)."""
    path = places_file(policies, country)
    if not path.is_file():
        return {}
    return load_gazetteer(path)


def unknown_places(gazetteer: Gazetteer, counts: Mapping[str, int]) -> int:
    """How many records the gazetteer cannot place, from ``counts`` (place ->
    records at it)."""
    return sum(n for place, n in counts.items() if place not in gazetteer)
