"""Synthetic encounter records: deterministic, well formed and shaped like the route."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from node.demo import (
    COLUMNS,
    CORRIDOR,
    DEMO_VOLUMES,
    PLACES,
    SURGE_NATIONALITY,
    generate_encounters,
    generate_federation,
    places_for,
    plant_values,
    surge_plan,
    write_csv,
)
from node.model.codes import ISO3, age_at
from node.model.records import ENCOUNTER_COLUMNS, IDENTIFYING_FIELDS, EncounterRecord

START = date(2024, 1, 1)  # a Monday
WEEKS = 12
ROUTE = CORRIDOR[1:]
EXTRAREGIONAL = {
    "CUB", "HTI", "IND", "NPL", "BGD", "CHN", "AFG", "UZB",
    "CMR", "COD", "ERI", "SOM", "GHA", "SEN", "AGO", "GIN",
}  # fmt: skip

Rows = list[dict[str, str]]
_cache: dict[tuple[str, int, int], Rows] = {}


def rows_of(country: str, n: int = 1500, seed: int = 11) -> Rows:
    key = (country, n, seed)
    if key not in _cache:
        _cache[key] = generate_encounters(country, n, seed=seed, start=START, weeks=WEEKS)
    return _cache[key]


def week_of(row: dict[str, str]) -> int:
    return (date.fromisoformat(row["encounter_date"]) - START).days // 7


def test_columns_match_the_ingest_template() -> None:
    assert COLUMNS == ENCOUNTER_COLUMNS
    assert all(list(row) == list(COLUMNS) for row in rows_of("PAN"))


def test_same_arguments_same_rows() -> None:
    again = generate_encounters("PAN", 1500, seed=11, start=START, weeks=WEEKS)
    assert again == rows_of("PAN")
    assert generate_encounters("PAN", 1500, seed=12, start=START, weeks=WEEKS) != again


def test_different_countries_meet_different_people() -> None:
    pan, cri = rows_of("PAN"), rows_of("CRI")
    assert not {r["document_number"] for r in pan} & {r["document_number"] for r in cri}
    people = {(r["family_name"], r["given_names"], r["date_of_birth"]) for r in pan}
    shared = [r for r in cri if (r["family_name"], r["given_names"], r["date_of_birth"]) in people]
    assert len(shared) < 5  # only chance coincidences of name and birthday


@pytest.mark.parametrize("country", [*ROUTE, "USA", "ARG"])
def test_rows_are_valid_encounter_records(country: str) -> None:
    rows = rows_of(country)
    assert len(rows) == 1500
    for row in rows:
        EncounterRecord.model_validate(row)
        assert row["nationality"] in EXTRAREGIONAL
        assert row["nationality"] != country
        assert row["previous_country"] in ISO3
        assert row["encounter_place"] in {p.name for p in places_for(country)}


@pytest.mark.parametrize("country", ROUTE)
def test_record_ids_and_documents_are_unique(country: str) -> None:
    rows = rows_of(country)
    ids = [r["record_id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rf"{country}-20\d\d-\d{{6}}", i) for i in ids)
    documents = [r["document_number"] for r in rows]
    assert len(set(documents)) == len(documents)
    assert all(re.fullmatch(r"[A-Z]{1,2}\d{7,8}", d) for d in documents)


def test_more_rows_extend_the_list_with_new_encounters() -> None:
    fewer = generate_encounters("PAN", 500, seed=11, start=START, weeks=6)
    more = generate_encounters("PAN", 900, seed=11, start=START, weeks=6)
    assert more[:500] == fewer
    late = more[500:]
    assert not {r["record_id"] for r in late} & {r["record_id"] for r in fewer}
    assert not {r["document_number"] for r in late} & {r["document_number"] for r in fewer}
    # Late registrations land in weeks already seen, not only after them.
    assert min(r["encounter_date"] for r in late) < max(r["encounter_date"] for r in fewer)


def test_record_numbers_restart_each_year() -> None:
    rows = generate_encounters("MEX", 800, seed=3, start=date(2024, 11, 20), weeks=10)
    first_2025 = next(r for r in rows if r["encounter_date"].startswith("2025"))
    assert first_2025["record_id"] == "MEX-2025-000001"
    numbers_2024 = [int(r["record_id"][-6:]) for r in rows if r["record_id"][4:8] == "2024"]
    assert numbers_2024 == sorted(numbers_2024)


def test_dates_fall_in_the_iso_weeks_and_follow_birth() -> None:
    start = date(2024, 3, 13)  # a Wednesday: the period starts on Monday 11 March
    rows = generate_encounters("GTM", 1000, seed=5, start=start, weeks=6)
    met = [date.fromisoformat(r["encounter_date"]) for r in rows]
    assert min(met) >= date(2024, 3, 11)
    assert max(met) < date(2024, 3, 11) + timedelta(weeks=6)
    assert len({d.isocalendar()[:2] for d in met}) == 6
    for row, day in zip(rows, met, strict=True):
        born = date.fromisoformat(row["date_of_birth"])
        assert born < day
        assert 0 <= age_at(born, day) <= 80


def test_ages_are_mostly_young_adults_with_some_children_and_few_elders() -> None:
    ages = [
        age_at(date.fromisoformat(r["date_of_birth"]), date.fromisoformat(r["encounter_date"]))
        for r in rows_of("PAN")
    ]
    share = Counter("minor" if a < 18 else "core" if a <= 45 else "older" for a in ages)
    assert share["core"] > 0.6 * len(ages)
    assert 0.05 * len(ages) < share["minor"] < 0.35 * len(ages)
    assert 0 < sum(a >= 60 for a in ages) < 0.03 * len(ages)


def test_young_children_travel_with_an_adult_of_their_family() -> None:
    rows = rows_of("HND")
    adults: dict[tuple[str, str, str], set[str]] = {}
    children = []
    for r in rows:
        met = date.fromisoformat(r["encounter_date"])
        key = (r["encounter_date"], r["encounter_place"], r["nationality"])
        if age_at(date.fromisoformat(r["date_of_birth"]), met) >= 18:
            adults.setdefault(key, set()).add(r["family_name"])
        elif age_at(date.fromisoformat(r["date_of_birth"]), met) < 12:
            children.append((key, r["family_name"]))
    assert children
    assert all(key in adults for key, _ in children)


def test_sex_is_f_m_or_rarely_x() -> None:
    sexes = Counter(r["sex"] for country in ROUTE for r in rows_of(country))
    assert set(sexes) <= {"F", "M", "X"}
    assert sexes["M"] > sexes["F"] > 0
    assert sexes["X"] < 0.01 * sum(sexes.values())


@pytest.mark.parametrize("country", ROUTE)
def test_previous_country_is_mostly_the_one_before_on_the_corridor(country: str) -> None:
    previous = Counter(r["previous_country"] for r in rows_of(country))
    before = CORRIDOR[CORRIDOR.index(country) - 1]
    assert previous.most_common(1)[0][0] == before
    assert 0.7 < previous[before] / sum(previous.values()) < 0.97
    assert len(previous) > 1


def test_direct_flights_bring_cubans_and_haitians_to_managua() -> None:
    flown = [r for r in rows_of("NIC") if r["previous_country"] == r["nationality"]]
    assert flown
    assert {r["nationality"] for r in flown} <= {"CUB", "HTI"}
    assert {r["encounter_place"] for r in flown} == {"Managua"}


@pytest.mark.parametrize("country", ROUTE)
def test_one_nationality_surges_in_the_last_weeks(country: str) -> None:
    plan = surge_plan(country, WEEKS)
    assert plan.nationality == SURGE_NATIONALITY
    assert plan.weeks.stop == WEEKS and len(plan.weeks) >= 2
    weekly = Counter(week_of(r) for r in rows_of(country) if r["nationality"] == plan.nationality)
    before = sum(weekly[w] for w in range(plan.first_week)) / plan.first_week
    during = sum(weekly[w] for w in plan.weeks) / len(plan.weeks)
    assert during > 2 * before
    assert weekly[WEEKS - 1] > 2.5 * before


def test_surge_starts_at_the_darien_and_reaches_mexico_later() -> None:
    assert surge_plan("PAN", WEEKS).first_week < surge_plan("MEX", WEEKS).first_week
    assert surge_plan("PAN", 1).weeks == range(0, 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weekly_volume_rises_slowly(seed: int) -> None:
    rows = rows_of("PAN", seed=seed)
    plan = surge_plan("PAN", WEEKS)
    weekly = Counter(week_of(r) for r in rows if r["nationality"] != plan.nationality)
    assert set(weekly) == set(range(WEEKS))
    first, second = sum(weekly[w] for w in range(6)), sum(weekly[w] for w in range(6, 12))
    assert first < second < 2 * first


def test_nationality_mix_differs_by_country() -> None:
    def share(country: str, nationalities: set[str]) -> float:
        rows = rows_of(country)
        return sum(r["nationality"] in nationalities for r in rows) / len(rows)

    asian = {"IND", "NPL", "BGD", "CHN", "AFG", "UZB"}
    assert share("PAN", asian) > share("MEX", asian)
    assert share("NIC", {"CUB", "HTI"}) > share("PAN", {"CUB", "HTI"})


def test_health_notes_are_mostly_empty() -> None:
    notes = [r["health_notes"] for r in rows_of("PAN")]
    written = [n for n in notes if n]
    assert 0 < len(written) < 0.2 * len(notes)
    assert any("EMS post" in n for n in written)


def test_places_carry_their_province_and_border_sector() -> None:
    for country, places in PLACES.items():
        assert all(p.country == country and p.province and p.border_sector for p in places)
    assert {p.name for p in PLACES["PAN"]} >= {
        "Lajas Blancas", "San Vicente", "Bajo Chiquito", "Metetí",
    }  # fmt: skip
    darien = {p.border_sector for p in PLACES["PAN"] if p.province == "Darién"}
    assert len(darien) == 1
    assert places_for("ARG")[0].country == "ARG"
    with pytest.raises(AttributeError):
        PLACES["MEX"][0].name = "Elsewhere"  # type: ignore[misc]


def test_plant_values_are_long_enough_to_scan_for() -> None:
    rows = [r for country in ROUTE for r in rows_of(country)]
    planted = plant_values(rows)
    assert set(IDENTIFYING_FIELDS) <= set(planted)
    assert planted["document_number"] == {r["document_number"] for r in rows}
    assert planted["date_of_birth"] == {r["date_of_birth"] for r in rows}
    assert "" not in planted["health_notes"]
    tokens = {t for f in ("family_name", "given_names") for v in planted[f] for t in v.split()}
    assert min(len(t) for t in tokens) >= 4
    # A place may leave the node; no name may hide inside one.
    place_text = " ".join(
        f"{p.name} {p.province} {p.border_sector}" for ps in PLACES.values() for p in ps
    ).casefold()
    assert not [t for t in tokens if t.casefold() in place_text]


def test_write_csv_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "pan.csv"
    rows = rows_of("PAN")[:50]
    write_csv(rows, path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        assert list(reader) == rows


def test_federation_links_travellers_along_the_route() -> None:
    fed = generate_federation(("CRI", "PAN"), 1200, seed=4, start=START, weeks=6)
    assert list(fed) == ["CRI", "PAN"]
    assert all(len(rows) == 1200 for rows in fed.values())
    in_panama = {r["document_number"]: r for r in fed["PAN"]}
    linked = [r for r in fed["CRI"] if r["document_number"] in in_panama]
    assert 0.1 * 1200 < len(linked) < 0.5 * 1200
    for row in linked:
        earlier = in_panama[row["document_number"]]
        fields = ("family_name", "given_names", "date_of_birth", "sex", "nationality")
        assert all(row[f] == earlier[f] for f in fields)
        gap = date.fromisoformat(row["encounter_date"]) - date.fromisoformat(
            earlier["encounter_date"]
        )
        assert timedelta(days=1) <= gap <= timedelta(days=14)
        assert row["previous_country"] == "PAN"
    documents = [r["document_number"] for r in fed["CRI"]]
    assert len(set(documents)) == len(documents)


def test_federation_without_links_equals_separate_generation() -> None:
    fed = generate_federation(
        ("PAN", "CRI"), {"PAN": 300, "CRI": 200}, seed=9, start=START, weeks=4, linked_share=0
    )
    assert fed["PAN"] == generate_encounters("PAN", 300, seed=9, start=START, weeks=4)
    assert fed["CRI"] == generate_encounters("CRI", 200, seed=9, start=START, weeks=4)


def test_demo_volumes_make_panama_the_biggest() -> None:
    assert max(DEMO_VOLUMES, key=lambda c: DEMO_VOLUMES[c]) == "PAN"
    assert set(DEMO_VOLUMES) == set(ROUTE)


def test_small_and_empty_requests() -> None:
    assert generate_encounters("PAN", 0, seed=1, start=START, weeks=1) == []
    assert len(generate_encounters("PAN", 1, seed=1, start=START, weeks=1)) == 1


@pytest.mark.parametrize(
    ("country", "n", "weeks"), [("pan", 10, 4), ("PANAMA", 10, 4), ("PAN", -1, 4), ("PAN", 10, 0)]
)
def test_bad_arguments_are_refused(country: str, n: int, weeks: int) -> None:
    with pytest.raises(ValueError):
        generate_encounters(country, n, seed=1, start=START, weeks=weeks)
