"""Policy model, loader and regional floor; every field rule kind."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.config import policies_dir, regional_policy_path
from node.errors import PolicyError
from node.model.codes import RCM_MEMBERS
from node.policy.loader import load_floor, load_policy, parse_policy
from node.policy.record_rules import EncounterRecordRules, FieldRule
from node.policy.records import (
    EncounterInput,
    Linker,
    allowed_fields,
    pseudonymise,
    record_subject,
    transform_encounter,
)

FLOOR = load_floor(regional_policy_path())
KEY = b"k" * 32
ROW = EncounterInput(
    record_id="PAN-000123",
    document_number="AB 123-456",
    date_of_birth=date(1990, 5, 2),
    sex="F",
    nationality="HTI",
    encounter_date=date(2024, 1, 10),
    encounter_place="Tapachula",
    previous_country="GTM",
)
GAZETTEER = {"Tapachula": ("Chiapas", "Southern border (GTM)")}


def _policy(**flow: Any) -> dict[str, Any]:
    return {
        "country": "PAN",
        "name": "Panama",
        "version": "t1",
        "legal_basis": "test",
        "exchanges": {
            "flow_statistics": {
                "shared": True,
                "dimensions": ["nationality", "sex"],
                "min_cell_size": 5,
                "audiences": ["TS"],
                "purposes": ["statistics"],
                **flow,
            }
        },
    }


def _write(tmp_path: Path, data: dict[str, Any], name: str = "X.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _records(**fields: dict[str, str]) -> EncounterRecordRules:
    return EncounterRecordRules(
        shared=True,
        audiences=["TS"],
        purposes=["statistics"],
        fields={k: FieldRule.model_validate(v) for k, v in fields.items()},
    )


# -- the nine members and the floor ----------------------------------------------------


def test_every_2016_member_has_a_policy_that_keeps_to_the_floor() -> None:
    for country in RCM_MEMBERS:
        policy = load_policy(policies_dir() / f"{country}.yaml", FLOOR)
        assert policy.country == country


def test_the_policies_differ_as_the_law_does() -> None:
    hnd = load_policy(policies_dir() / "HND.yaml").exchanges.flow_statistics
    assert hnd.period == "month" and hnd.dimensions == ["nationality_region"]
    usa = load_policy(policies_dir() / "USA.yaml").exchanges.encounter_records
    assert usa.shared and usa.linkage_tokens and usa.audiences == ["TS"]
    mex = load_policy(policies_dir() / "MEX.yaml")
    assert "sex" not in mex.exchanges.flow_statistics.dimensions
    assert mex.exchanges.encounter_records.rule("sex").action == "drop"


# -- located errors -----------------------------------------------------------------------


def test_errors_name_the_file_the_key_and_the_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, _policy(min_cell_size=0, coarsen=["nationality", "nationality"]))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    text = str(err.value)
    assert f"{path}: exchanges.flow_statistics.min_cell_size:" in text
    assert "greater than or equal to 1" in text


def test_field_rule_errors_are_located(tmp_path: Path) -> None:
    data = _policy()
    data["exchanges"]["encounter_records"] = {
        "shared": True,
        "audiences": ["TS"],
        "purposes": ["statistics"],
        "fields": {"encounter_date": {"action": "generalise", "to": "fortnight"}},
    }
    with pytest.raises(PolicyError) as err:
        load_policy(_write(tmp_path, data))
    assert "exchanges.encounter_records.fields" in str(err.value)
    assert "cannot generalise to 'fortnight'" in str(err.value)


@pytest.mark.parametrize(
    ("field", "rule", "problem"),
    [
        ("family_name", {"action": "keep"}, "not allowed for this field"),
        ("document_number", {"action": "generalise", "to": "x"}, "not allowed"),
        ("health_notes", {"action": "pseudonymise"}, "not allowed"),
        ("sex", {"action": "keep", "to": "band"}, "'to' applies only to generalise"),
        ("date_of_birth", {"action": "generalise"}, "add 'to'"),
        ("passport_photo", {"action": "drop"}, "not a raw field"),
    ],
)
def test_impossible_field_rules_are_rejected(
    field: str, rule: dict[str, str], problem: str
) -> None:
    data = _policy()
    data["exchanges"]["encounter_records"] = {"fields": {field: rule}}
    with pytest.raises(PolicyError, match=problem):
        parse_policy(data, "p.yaml")


def test_margins_need_secondary_suppression_and_known_dimensions() -> None:
    with pytest.raises(PolicyError, match="secondary_suppression is none"):
        parse_policy(_policy(margins=[[]], secondary_suppression="none"), "p.yaml")
    with pytest.raises(PolicyError, match=r"margins\[0\]: \['age_band'\] not among"):
        parse_policy(_policy(margins=[["age_band"]]), "p.yaml")
    with pytest.raises(PolicyError, match="rounding"):
        parse_policy(_policy(rounding=10), "p.yaml")


def test_linkage_tokens_need_a_pseudonymised_document() -> None:
    with pytest.raises(ValueError, match="pseudonymise document_number"):
        EncounterRecordRules(
            shared=True, audiences=["TS"], purposes=["statistics"], linkage_tokens=True
        )


# -- the floor ------------------------------------------------------------------------------


def test_a_policy_weaker_than_the_floor_is_rejected_at_load(tmp_path: Path) -> None:
    data = _policy(min_cell_size=2, audiences=["TS", "UNODC"], retention_days=9000)
    path = _write(tmp_path, data)
    parse_policy(data, str(path))  # valid on its own
    with pytest.raises(PolicyError) as err:
        load_policy(path, FLOOR)
    lines = str(err.value).splitlines()
    assert f"{path}: exchanges.flow_statistics.min_cell_size: 2 is below" in lines[-1]
    assert any("exchanges.flow_statistics.audiences[1]: 'UNODC'" in line for line in lines)
    assert any("retention_days: 9000 exceeds" in line for line in lines)


def test_the_floor_keeps_health_notes_and_names_home_and_records_to_the_ts() -> None:
    data = _policy()
    data["exchanges"]["encounter_records"] = {
        "shared": True,
        "audiences": ["members"],
        "purposes": ["statistics"],
        "fields": {"family_name": {"action": "drop"}},
    }
    problems = dict(FLOOR.problems(parse_policy(data, "p.yaml")))
    assert "exchanges.encounter_records.audiences[0]" in problems
    assert FLOOR.min_cell_size >= 3 and "health_notes" in FLOOR.never_leave


def test_named_member_countries_are_audiences_where_members_are() -> None:
    data = _policy(audiences=["TS", "CRI"])
    assert FLOOR.problems(parse_policy(data, "p.yaml")) == []
    data = _policy(audiences=["TS", "FRA"])
    assert FLOOR.problems(parse_policy(data, "p.yaml"))


# -- field rules: drop, keep, generalise, pseudonymise ---------------------------------------


def _body(rules: EncounterRecordRules, linker: Linker | None = None) -> dict[str, Any]:
    return transform_encounter(
        ROW, rules, "MEX", pseudonym_key=KEY, linker=linker, gazetteer=GAZETTEER
    )


def test_drop_is_the_default_and_leaves_nothing() -> None:
    body = _body(_records())
    assert {k for k, v in body.items() if v is not None} == {"reporting_country"}


def test_keep() -> None:
    body = _body(_records(sex={"action": "keep"}, previous_country={"action": "keep"}))
    assert body["sex"] == "F" and body["previous_country"] == "GTM"


@pytest.mark.parametrize(
    ("to", "value", "period_type"),
    [
        ("day", "2024-01-10", "DAY"),
        ("iso_week", "2024-W02", "ISO_WEEK"),
        ("month", "2024-01", "MONTH"),
        ("quarter", "2024-Q1", "QUARTER"),
    ],
)
def test_generalise_dates_along_the_ladder(to: str, value: str, period_type: str) -> None:
    body = _body(_records(encounter_date={"action": "generalise", "to": to}))
    assert (body["encounter_period"], body["encounter_period_type"]) == (value, period_type)


def test_generalise_age_exact_and_band() -> None:
    assert _body(_records(date_of_birth={"action": "generalise", "to": "age"}))["age"] == 33
    body = _body(_records(date_of_birth={"action": "generalise", "to": "age_band"}))
    assert body["age_band"] == "30-44" and body["age"] is None


@pytest.mark.parametrize(
    ("to", "value"),
    [
        ("municipality", "Tapachula"),
        ("province", "Chiapas"),
        ("border_sector", "Southern border (GTM)"),
        ("country", "MEX"),
    ],
)
def test_generalise_place_along_the_ladder(to: str, value: str) -> None:
    body = _body(_records(encounter_place={"action": "generalise", "to": to}))
    assert body["place"] == value and body["place_level"] == to.upper()


def test_generalise_nationality_to_region() -> None:
    body = _body(_records(nationality={"action": "generalise", "to": "region"}))
    assert body["nationality_region"] == "Caribbean" and body["nationality"] is None


def test_pseudonymise_is_a_keyed_hmac_not_a_plain_hash() -> None:
    body = _body(_records(document_number={"action": "pseudonymise"}))
    plain = hashlib.sha256(b"AB123456").hexdigest()[:32]
    expected = hmac.new(KEY, b"document_number\x1fAB123456", hashlib.sha256).hexdigest()[:32]
    assert body["document_pseudonym"] == expected != plain
    other = transform_encounter(
        ROW,
        _records(document_number={"action": "pseudonymise"}),
        "MEX",
        pseudonym_key=b"o" * 32,
        linker=None,
        gazetteer=GAZETTEER,
    )
    assert other["document_pseudonym"] != body["document_pseudonym"]
    assert pseudonymise(KEY, "record_id", "x") != pseudonymise(KEY, "document_number", "x")
    assert record_subject("MEX", KEY, ROW.record_id).startswith("EncounterRecord|MEX|")
    assert ROW.record_id not in record_subject("MEX", KEY, ROW.record_id)


def test_linkage_token_only_when_allowed_and_a_key_is_held() -> None:
    rules = EncounterRecordRules(
        shared=True,
        audiences=["TS"],
        purposes=["statistics"],
        linkage_tokens=True,
        fields={"document_number": FieldRule(action="pseudonymise")},
    )
    calls: list[tuple[str, str, str]] = []

    def linker(doc: str, nat: str, dob: str) -> str:
        calls.append((doc, nat, dob))
        return "t" * 32

    assert _body(rules, linker)["linkage_token"] == "t" * 32
    assert calls == [("AB 123-456", "HTI", "1990-05-02")]
    assert _body(rules, None)["linkage_token"] is None
    assert "linkage_token" in allowed_fields(rules, linkage=True)
    assert "linkage_token" not in allowed_fields(rules, linkage=False)


def test_what_the_aggregator_checks_of_an_incoming_event() -> None:
    check = FLOOR.event_problem
    assert check("FlowStatistic", ("TS", "CRI"), ("statistics",), 1825, {"count": 3}) is None
    assert "count below" in str(check("FlowStatistic", ("TS",), ("statistics",), 10, {"count": 2}))
    assert "audience 'members'" in str(
        check("EncounterRecord", ("members",), ("statistics",), 1, {})
    )
    assert "purpose 'marketing'" in str(check("FlowStatistic", ("TS",), ("marketing",), 1, None))
    assert "retained 9000 days" in str(check("FlowStatistic", ("TS",), ("statistics",), 9000, None))
    body = {"reporting_country": "USA", "sex": "F"}
    assert check("EncounterRecord", ("TS",), ("statistics",), 30, body) is None
    # a withdrawal carries no body: only the envelope is checked
    assert check("FlowStatistic", ("TS",), ("statistics",), 30, None) is None


def test_a_stricter_floor_stops_fields_derived_from_what_never_leaves() -> None:
    strict = FLOOR.model_copy(update={"never_leave": [*FLOOR.never_leave, "date_of_birth"]})
    body = {"reporting_country": "USA", "age_band": "18-29"}
    problem = strict.event_problem("EncounterRecord", ("TS",), ("statistics",), 30, body)
    assert problem == "field age_band derives from date_of_birth, which never leaves"
    usa = load_policy(policies_dir() / "USA.yaml")
    assert (
        "exchanges.encounter_records.fields.date_of_birth.action",
        "date_of_birth never leaves under the regional floor (2016.1): the only rule is drop",
    ) in strict.problems(usa)


def test_the_floor_sets_a_minimum_protection_level(tmp_path: Path) -> None:
    data = _policy(min_cell_size=5)
    data["exchanges"]["flow_statistics"]["protection"] = 2
    path = _write(tmp_path, data)
    with pytest.raises(PolicyError, match=r"flow_statistics\.protection: 2 is below"):
        load_policy(path, FLOOR)
    data["exchanges"]["flow_statistics"]["protection"] = 4
    assert load_policy(_write(tmp_path, data), FLOOR).exchanges.flow_statistics.protection == 4
    assert load_floor(regional_policy_path()).min_protection == 3
