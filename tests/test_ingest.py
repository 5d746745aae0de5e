"""Raw input: every bad row is located and kept aside; good rows are never lost."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.errors import InputError
from node.member.ingest import ingest_encounters, template_header
from node.model.records import ENCOUNTER_COLUMNS
from node.store.node_store import NodeStore

GOOD = {
    "record_id": "PAN-1",
    "document_number": "PA1234567",
    "family_name": "Pierre",
    "given_names": "Jean Baptiste",
    "date_of_birth": "1990-04-02",
    "sex": "M",
    "nationality": "HTI",
    "encounter_date": "2024-03-05",
    "encounter_place": "Lajas Blancas",
    "previous_country": "COL",
    "health_notes": "",
}


def _write(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header or list(ENCOUNTER_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NodeStore]:
    s = NodeStore(tmp_path / "node.db")
    yield s
    s.close()


def _row(i: int, **changes: str) -> dict[str, str]:
    return {**GOOD, "record_id": f"PAN-{i}", "document_number": f"PA{i:07d}", **changes}


def test_template_is_the_documented_header() -> None:
    assert template_header().split(",") == list(ENCOUNTER_COLUMNS)


def test_bad_rows_are_located_and_good_rows_kept(tmp_path: Path, store: NodeStore) -> None:
    rows = [
        _row(1),
        _row(2, sex="Q"),
        _row(3, nationality="XXX"),
        _row(4, date_of_birth="1990-13-01"),
        _row(5, encounter_date="1980-01-01"),
        _row(6),
    ]
    path = _write(tmp_path / "enc.csv", rows)
    report = ingest_encounters(path, store, tmp_path / "rejects")
    assert (report.rows, report.stored, report.rejected_rows) == (6, 2, 4)
    located = {(r.line, r.field) for r in report.rejected}
    assert located == {(3, "sex"), (4, "nationality"), (5, "date_of_birth"), (6, "encounter_date")}
    assert all(r.file == str(path) for r in report.rejected)
    assert "enc.csv:3: field 'sex':" in report.rejected[0].located()
    # kept, with the reason, in a rejects file at home
    assert report.rejects_file is not None
    kept = list(csv.DictReader(report.rejects_file.read_text(encoding="utf-8").splitlines()))
    assert [int(k["line"]) for k in kept] == [3, 4, 5, 6]
    assert all(k["reason"] for k in kept)
    assert store.count_encounters() == 2


#: A person's name or document number typed into the wrong column.
MISPLACED = "Jean-Baptiste Pierre PA1234567"


@pytest.mark.parametrize(
    "field",
    ["date_of_birth", "sex", "nationality", "previous_country", "encounter_date", "record_id"],
)
def test_messages_never_carry_the_rejected_value(
    tmp_path: Path, store: NodeStore, field: str
) -> None:
    """A value in the wrong column is rejected, by file, line and field, and
    neither the reason nor the report repeats it."""
    value = MISPLACED if field != "record_id" else MISPLACED + "x" * 200
    path = _write(tmp_path / "enc.csv", [{**GOOD, field: value}])
    report = ingest_encounters(path, store, tmp_path / "rejects")
    assert [(r.line, r.field) for r in report.rejected] == [(2, field)]
    shown = " ".join(r.located() for r in report.rejected) + str(report.as_dict())
    for word in ("Pierre", "PA1234567", "Jean"):
        assert word not in shown


def test_a_file_without_its_header_row_does_not_echo_the_record(
    tmp_path: Path, store: NodeStore
) -> None:
    path = tmp_path / "enc.csv"
    path.write_text(",".join(GOOD.values()) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        ingest_encounters(path, store, tmp_path / "rejects")
    text = str(info.value)
    assert "header row missing" in text and "enc.csv:1" in text
    for value in ("Pierre", "PA1234567", "1990-04-02", "Lajas"):
        assert value not in text


def test_a_misspelt_column_is_named_with_its_likely_meaning(
    tmp_path: Path, store: NodeStore
) -> None:
    header = [c if c != "nationality" else "nationalty" for c in ENCOUNTER_COLUMNS]
    row = {(k if k != "nationality" else "nationalty"): v for k, v in GOOD.items()}
    with pytest.raises(InputError, match="'nationalty' \\(did you mean 'nationality'\\?\\)"):
        ingest_encounters(_write(tmp_path / "enc.csv", [row], header), store, tmp_path / "r")


def test_ingesting_twice_stores_nothing_twice(tmp_path: Path, store: NodeStore) -> None:
    path = _write(tmp_path / "enc.csv", [_row(i) for i in range(1, 11)])
    first = ingest_encounters(path, store, tmp_path / "rejects")
    second = ingest_encounters(path, store, tmp_path / "rejects")
    assert (first.stored, first.duplicates) == (10, 0)
    assert (second.stored, second.duplicates) == (0, 10)
    assert store.count_encounters() == 10


def test_changed_record_under_a_known_id_is_rejected_not_overwritten(
    tmp_path: Path, store: NodeStore
) -> None:
    ingest_encounters(_write(tmp_path / "a.csv", [_row(1)]), store, tmp_path / "r")
    report = ingest_encounters(
        _write(tmp_path / "b.csv", [_row(1, nationality="CUB")]), store, tmp_path / "r"
    )
    assert report.stored == 0
    assert [(r.line, r.field) for r in report.rejected] == [(2, "record_id")]


def test_missing_columns_name_the_file_and_header_line(tmp_path: Path, store: NodeStore) -> None:
    header = [c for c in ENCOUNTER_COLUMNS if c != "sex"]
    path = _write(tmp_path / "enc.csv", [{k: v for k, v in _row(1).items() if k != "sex"}], header)
    with pytest.raises(InputError) as info:
        ingest_encounters(path, store, tmp_path / "r")
    assert info.value.line == 1 and "missing columns ['sex']" in str(info.value)
    assert str(path) in str(info.value)


def test_optional_health_notes_column_may_be_absent(tmp_path: Path, store: NodeStore) -> None:
    header = list(ENCOUNTER_COLUMNS[:-1])
    row = {k: v for k, v in _row(1).items() if k != "health_notes"}
    report = ingest_encounters(_write(tmp_path / "e.csv", [row], header), store, tmp_path / "r")
    assert report.stored == 1


def test_broken_bytes_wrong_field_counts_and_nul(tmp_path: Path, store: NodeStore) -> None:
    path = tmp_path / "broken.csv"
    good = ",".join(_row(1).values())
    lines = [
        ",".join(ENCOUNTER_COLUMNS).encode(),
        good.encode(),
        b"PAN-2,PA2,Dupont\xff\xfe,Marie,1990-01-01,F,HTI,2024-01-02,Lajas Blancas,COL,",
        b"PAN-3,too,few,fields",
        ",".join(_row(4, family_name="Nu\x00ll").values()).encode(),
        ",".join(_row(5, family_name="x" * 70_000).values()).encode(),
        ",".join(_row(6).values()).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = ingest_encounters(path, store, tmp_path / "r")
    assert report.stored == 2
    by_line = {r.line: r for r in report.rejected}
    assert by_line[3].field == "family_name" and "UTF-8" in by_line[3].reason
    assert "expected 11 fields, found 4" in by_line[4].reason
    assert by_line[5].field == "family_name" and "NUL" in by_line[5].reason
    assert 6 in by_line


def test_empty_file_is_a_located_error(tmp_path: Path, store: NodeStore) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InputError, match="empty"):
        ingest_encounters(path, store, tmp_path / "r")
