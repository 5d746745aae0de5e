"""Places are data: each country's gazetteer is a file under policies/places/,
read by node.policy.places; the demo's places are rows of those files; a
record at a place its country's file does not list is counted by ingest and
preview, never turned into _U in silence."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import main
from node.config import Home, policies_dir
from node.demo.synth import PLACES, generate_encounters, write_csv
from node.errors import PolicyFileError
from node.member import encounters
from node.member.intake import ingest
from node.member.member_home import init_member
from node.model.codes import is_iso3
from node.policy.places import PLACES_HEADER, country_gazetteer, load_gazetteer, places_file
from tests.factories import START

PLACES_DIR = policies_dir() / "places"
FILES = sorted(PLACES_DIR.glob("*.csv"))


def test_every_country_with_a_policy_ships_a_gazetteer() -> None:
    countries = {p.stem for p in policies_dir().glob("*.yaml")} - {"regional"}
    assert countries <= {p.stem for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_gazetteer_loads_and_is_named_by_its_country(path: Path) -> None:
    assert is_iso3(path.stem)
    places = load_gazetteer(path)
    assert places
    # Read independently of the loader: every row is a place, none lost.
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == PLACES_HEADER
    assert {r[0]: (r[1], r[2]) for r in rows[1:]} == places


def test_the_demo_places_are_rows_of_the_gazetteers() -> None:
    """The demo takes each place's province and sector from its country's file,
    and they are what the demo always published (so its tables stay the same)."""
    for country, places in PLACES.items():
        gazetteer = country_gazetteer(policies_dir(), country)
        for place in places:
            assert gazetteer[place.name] == (place.province, place.border_sector)
    pan = {p.name: (p.province, p.border_sector) for p in PLACES["PAN"]}
    assert pan == {
        "Bajo Chiquito": ("Comarca Emberá-Wounaan", "Darién gap (COL border)"),
        "Lajas Blancas": ("Darién", "Darién gap (COL border)"),
        "San Vicente": ("Darién", "Darién gap (COL border)"),
        "Metetí": ("Darién", "Darién gap (COL border)"),
        "Tocumen": ("Panamá", "Interior"),
    }
    assert [(p.name, p.province) for p in PLACES["USA"]] == [("Washington", "District of Columbia")]


def test_a_country_without_a_file_has_an_empty_gazetteer(tmp_path: Path) -> None:
    assert country_gazetteer(tmp_path, "ZZZ") == {}
    assert places_file(tmp_path, "ZZZ") == tmp_path / "places" / "ZZZ.csv"


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ("place,province,sector\n", 1, None, "the header must be"),
        ("municipality,province,border_sector\nA,B,C\nD,E\n", 3, None, "2 fields"),
        ("municipality,province,border_sector\nA,,C\n", 2, "province", "empty"),
        ("municipality,province,border_sector\nA,B,C\n\nA,B,D\n", 4, "municipality", "line 2"),
    ],
)
def test_a_broken_gazetteer_names_file_line_and_column(
    tmp_path: Path, text: str, line: int, column: str | None, reason: str
) -> None:
    path = tmp_path / "places" / "XYZ.csv"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyFileError) as err:
        load_gazetteer(path)
    assert err.value.file == str(path)
    assert err.value.line == line
    assert err.value.key == column
    assert reason in str(err.value)


# -- unknown places are counted ---------------------------------------------------

UNKNOWN_PLACE = "Nowhere Junction"
OTHER_COUNTRY = "Tapachula"  # in MEX's gazetteer, not Panama's


def _home_with_unknown_places(tmp_path: Path) -> tuple[Home, Path, list[int]]:
    home = init_member(tmp_path / "pan", "PAN")
    rows = generate_encounters("PAN", 60, seed=17, start=START, weeks=2)
    for i in (3, 10, 11):
        rows[i]["encounter_place"] = UNKNOWN_PLACE
    rows[20]["encounter_place"] = OTHER_COUNTRY
    path = tmp_path / "pan.csv"
    write_csv(rows, path)
    return home, path, [3 + 2, 10 + 2, 11 + 2, 20 + 2]  # file lines: header is line 1


def test_ingest_counts_records_at_unknown_places(tmp_path: Path) -> None:
    home, path, lines = _home_with_unknown_places(tmp_path)
    report = ingest(home, path, stage=False)
    assert report.stored == 60
    assert report.unknown_places == 4
    assert report.unknown_place_lines == lines
    assert report.places_file == "policies/places/PAN.csv"
    # Again: already stored, still at places nobody can place.
    again = ingest(home, path, stage=False)
    assert again.duplicates == 60 and again.unknown_places == 4


def test_ingest_cli_reports_unknown_places_in_json_and_text(tmp_path: Path) -> None:
    home, path, lines = _home_with_unknown_places(tmp_path)
    runner = CliRunner()
    done = runner.invoke(main, ["--home", str(home.path), "ingest", str(path), "--format", "json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert data["unknown_places"] == 4
    assert data["unknown_place_lines"] == lines
    assert data["places_file"] == "policies/places/PAN.csv"
    text = runner.invoke(main, ["--home", str(home.path), "ingest", str(path)])
    assert text.exit_code == 0
    assert "4 record(s) at a place policies/places/PAN.csv does not list" in text.output
    # Line numbers, never the place names (a raw value of the record).
    assert UNKNOWN_PLACE not in text.output and OTHER_COUNTRY not in text.output


def test_preview_counts_records_whose_place_leaves_as_unknown(tmp_path: Path) -> None:
    home, path, _ = _home_with_unknown_places(tmp_path)
    ingest(home, path, stage=False)
    runner = CliRunner()
    done = runner.invoke(main, ["--home", str(home.path), "preview", "--format", "json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert data["unknown_places"] == 4
    assert data["places_file"] == "policies/places/PAN.csv"
    text = runner.invoke(main, ["--home", str(home.path), "preview"])
    assert "4 of them at a place policies/places/PAN.csv does not list" in text.output


def test_a_clean_file_counts_no_unknown_place(tmp_path: Path) -> None:
    home = init_member(tmp_path / "pan", "PAN")
    rows = generate_encounters("PAN", 40, seed=3, start=START, weeks=1)
    write_csv(rows, tmp_path / "pan.csv")
    report = ingest(home, tmp_path / "pan.csv", stage=False)
    assert report.unknown_places == 0 and report.unknown_place_lines == []


def test_the_gazetteer_is_the_countrys_own(tmp_path: Path) -> None:
    """Panama's records are placed with Panama's file: a Mexican town is not
    in it (the old table mixed every country's places into one)."""
    pan = encounters.gazetteer("PAN")
    assert "Lajas Blancas" in pan and OTHER_COUNTRY not in pan
    assert encounters.gazetteer("MEX")[OTHER_COUNTRY] == ("Chiapas", "Southern border (GTM)")


def test_a_reference_file_report_keeps_its_fields(tmp_path: Path) -> None:
    """Places are looked up in encounter files only: a reference file's JSON
    report has exactly the fields it had."""
    home = init_member(tmp_path / "pan", "PAN")
    sample = Path(__file__).resolve().parent.parent / "node/demo/samples/pan/legislation.csv"
    done = CliRunner().invoke(
        main, ["--home", str(home.path), "ingest", str(sample), "--format", "json"]
    )
    assert done.exit_code == 0, done.output
    assert set(json.loads(done.output)) == {
        "file", "rows", "stored", "duplicates", "rejected", "blank", "rejects_file",
        "staged", "staging_waits", "errors", "kind", "updated",
    }  # fmt: skip
