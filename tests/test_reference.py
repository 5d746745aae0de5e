"""Reference data end to end without Kafka: ingest with located errors, publish
under the policy's exchange rules, aggregate into the views, correct,
withdraw, show history, report as table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from node.aggregator.apply import Aggregator
from node.aggregator.stats import ApplyStats
from node.cli import main
from node.config import Home, policies_dir
from node.crypto.signing import SigningKey
from node.demo.federation import SAMPLES_DIR, sample_files
from node.errors import ConfigError, InputError
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member import corrections
from node.member.drain import drain_outbox
from node.member.event_factory import FLOW_KIND, EventFactory
from node.member.flow_release import prepare_flow_events
from node.member.ingest_reference import detect_kind
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.member.reference_pipeline import ReferencePlan, plan_with_reference
from node.model.events import Envelope
from node.operator.status import home_status
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.store.reference import ReferenceStore
from node.transport.memory import MemorySink, MemorySource, MemoryTopic
from tests.factories import aggregator_for

LEG_HEADER = (
    "country,entry_id,topic,instrument,article,summary,penalty_min_months,"
    "penalty_max_months,fine_min,fine_max,fine_currency,palermo_status,palermo_status_date"
)


def _member(tmp_path: Path, country: str, policy: Path | None = None) -> Home:
    return init_member(tmp_path / country.lower(), country, policy=policy)


def _publish(home: Home, topic: MemoryTopic) -> ReferencePlan:
    """What publish stages, drained to an in-memory topic."""
    policy = home_policy(home)
    with NodeStore(home.store_path) as store:
        key = SigningKey.load(home.country, home.signing_key_path)
        factory = EventFactory(home.country, policy, key, event_codec())
        flow = prepare_flow_events(store, factory)
        staged, reference = plan_with_reference(store, factory, flow.events, FLOW_KIND)
        if staged:
            store.stage(staged)
        drain_outbox(store, MemorySink(topic))
    return reference


def _apply(agg: Home, topic: MemoryTopic, start: int = 0) -> ApplyStats:
    with PictureStore(agg.store_path) as store:
        aggregator = Aggregator(
            store, event_codec(), trust.key_directory(agg), floor=regional_floor()
        )
        return aggregator.apply_batch(MemorySource(topic, committed=start).poll_batch(0, 10**9))


def _view(agg: Home, table: str) -> dict[str, dict[str, Any]]:
    with PictureStore(agg.store_path) as store:
        return {r["_subject"]: r for r in store.view(table)}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- ingest ----------------------------------------------------------------------------


def test_every_sample_file_ingests_cleanly(tmp_path: Path) -> None:
    for country in ("PAN", "CRI", "GTM", "MEX"):
        home = _member(tmp_path, country)
        files = sample_files(country)
        assert {detect_kind(f) for f in files} >= {
            "legislation",
            "consular",
            "health",
            "focal-points",
        }
        for sample in files:
            report = ingest(home, sample)
            assert report.rejected == [] and report.stored == report.rows > 0, sample
    assert "ILLUSTRATIVE" in (SAMPLES_DIR / "README.md").read_text()


def test_csv_errors_are_located_and_good_rows_kept(tmp_path: Path) -> None:
    home = _member(tmp_path, "PAN")
    path = _write(
        tmp_path / "leg.csv",
        LEG_HEADER
        + "\n"
        + "PAN,L-1,SMUGGLING_OFFENCE,Código Penal,Art. 1,Offence,24,12,,,,,\n"
        + "PAN,L-2,CARRIER_SANCTIONS,Ley 3,,Fines,,,100,200,USD,,\n"
        + "CRI,L-3,CARRIER_SANCTIONS,Ley 3,,Fines,,,,,,,\n"
        + "PAN,L-4,PALERMO,Protocol,,Party,,,,,,RATIFIED,2004-08-18\n"
        + "PAN,L-2,CARRIER_SANCTIONS,Ley 3,,Again,,,,,,,\n"
        + "PAN,L-6,PALERMO_PROTOCOL,Protocol,,Party,,,,,,RATIFIED,2004-13-01\n",
    )
    report = ingest(home, path)
    assert report.as_dict()["kind"] == "legislation"
    assert (report.rows, report.stored, report.rejected_rows) == (6, 1, 5)
    errors = [r.located() for r in report.rejected]
    assert errors[0] == f"{path}:2: penalty_min_months is greater than penalty_max_months"
    assert errors[1] == f"{path}:4: field 'country': this node submits PAN's records only"
    assert errors[2].startswith(f"{path}:5: field 'topic': Input should be 'CARRIER_SANCTIONS'")
    assert errors[3] == f"{path}:6: field 'entry_id': entry_id repeats line 3"
    assert errors[4].startswith(f"{path}:7: field 'palermo_status_date': Input should be a valid")
    assert report.rejects_file is not None and report.rejects_file.is_file()
    with ReferenceStore(home.store_path) as refs:
        assert [i.subject for i in refs.items("LegislationEntry")] == ["LegislationEntry|PAN|L-2"]


def test_json_array_errors_name_the_line_where_the_record_starts(tmp_path: Path) -> None:
    home = _member(tmp_path, "PAN")
    good = {
        "issuer": "PAN",
        "advisory_id": "H-1",
        "disease": "Cholera",
        "country_of_origin": "HTI",
        "source": "PAHO",
        "confidence": "HIGH",
        "impact": "HIGH",
        "valid_from": "2026-01-01",
        "summary": "S",
    }
    text = "[\n" + json.dumps(good, indent=2) + ",\n"
    bad_line = text.count("\n") + 1
    text += json.dumps({**good, "advisory_id": "H-2", "country_of_origin": "XXX"}, indent=2)
    text += ",\n" + json.dumps({**good, "advisory_id": "H-3", "valid_until": "2025-01-01"})
    text += ",\n 42\n]\n"
    report = ingest(home, _write(tmp_path / "health.json", text))
    errors = [r.located() for r in report.rejected]
    assert report.stored == 1
    assert errors[0] == (
        f"{tmp_path / 'health.json'}:{bad_line}: field 'country_of_origin': "
        "not an ISO 3166-1 alpha-3 country code"
    )
    assert errors[1].endswith("valid_until is before valid_from")
    assert errors[2].endswith("expected a JSON object")


def test_jsonl_lists_and_unknown_fields(tmp_path: Path) -> None:
    home = _member(tmp_path, "GTM")
    rows = [
        {
            "country": "GTM",
            "focal_point_id": "F-1",
            "name": "A",
            "role": "R",
            "institution": "I",
            "email": "a@example.org",
            "languages": "es;en",
        },
        {
            "country": "GTM",
            "focal_point_id": "F-2",
            "name": "B",
            "role": "R",
            "institution": "I",
            "email": "not-an-email",
        },
        {
            "country": "GTM",
            "focal_point_id": "F-3",
            "name": "C",
            "role": "R",
            "institution": "I",
            "email": "c@example.org",
            "password": "x",
        },
    ]
    path = _write(tmp_path / "fp.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    report = ingest(home, path)
    assert report.stored == 1
    assert [(r.line, r.field) for r in report.rejected] == [(2, "email"), (3, "password")]
    with ReferenceStore(home.store_path) as refs:
        (item,) = refs.items("FocalPoint")
    assert item.item.model_dump()["languages"] == ["es", "en"]


def test_kind_detection_and_override(tmp_path: Path) -> None:
    home = _member(tmp_path, "PAN")
    unknown = _write(tmp_path / "x.csv", "a,b\n1,2\n")
    with pytest.raises(InputError, match="cannot tell what kind of file this is"):
        ingest(home, unknown)
    legislation = _write(tmp_path / "l.csv", LEG_HEADER + "\n")
    with pytest.raises(InputError, match="missing columns"):
        ingest(home, legislation, kind="consular")
    broken = _write(tmp_path / "b.json", '[{"issuer": "PAN",\n "advisory_id": }]')
    with pytest.raises(InputError, match=r"b\.json:2: malformed JSON"):
        ingest(home, broken, kind="health")


def test_reingest_counts_unchanged_and_updated(tmp_path: Path) -> None:
    home = _member(tmp_path, "PAN")
    row = "PAN,L-1,CARRIER_SANCTIONS,Ley 3,,Fines,,,100,200,USD,,\n"
    first = ingest(home, _write(tmp_path / "l.csv", LEG_HEADER + "\n" + row))
    again = ingest(home, tmp_path / "l.csv")
    changed = ingest(
        home, _write(tmp_path / "l.csv", LEG_HEADER + "\n" + row.replace("200", "300"))
    )
    assert (first.stored, again.stored, again.duplicates) == (1, 0, 1)
    assert changed.as_dict()["updated"] == 1


def test_cli_ingest_kind_template_and_encounter_default(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["ingest", "--template", "--kind", "health"])
    assert out.exit_code == 0 and out.output.startswith("issuer,advisory_id,disease,icd10")
    out = runner.invoke(main, ["ingest", "--template"])
    assert out.output.startswith("record_id,document_number,family_name")
    home = _member(tmp_path, "MEX")
    bad = _write(tmp_path / "c.csv", "host_country,mission_id,sending_country,mission_type,city\n")
    bad.write_text(bad.read_text() + "MEX,M-1,IND,PALACE,Tijuana\n")
    result = runner.invoke(main, ["--home", str(home.path), "ingest", str(bad), "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["kind"] == "consular" and data["stored"] == 0
    assert data["errors"][0].startswith(f"{bad}:2: field 'mission_type': Input should be")


# -- publish, aggregate, views ----------------------------------------------------------


@pytest.fixture
def federation(tmp_path: Path) -> tuple[dict[str, Home], Home]:
    members = {c: _member(tmp_path, c) for c in ("PAN", "MEX")}
    for country, home in members.items():
        for sample in sample_files(country):
            ingest(home, sample)
    agg = aggregator_for(tmp_path, list(members.values()))
    return members, agg


def test_reference_events_build_every_view(federation: tuple[dict[str, Home], Home]) -> None:
    members, agg = federation
    topic = MemoryTopic()
    plans = {c: _publish(h, topic) for c, h in members.items()}
    assert plans["PAN"].kinds["LegislationEntry"].new == 4
    # Panama shares intelligence, but no recipient keys were given: held, not sent.
    intelligence = plans["PAN"].kinds["IntelligenceReport"]
    assert (intelligence.shared, intelligence.held_restricted, intelligence.new) == (True, 1, 0)
    stats = _apply(agg, topic)
    assert stats.rejected_total == 0 and stats.applied == len(topic.records)
    legislation = _view(agg, "legislation_view")
    assert len(legislation) == 8
    assert legislation["LegislationEntry|PAN|PAN-LEG-004"]["palermo_status"] == "RATIFIED"
    consulates = _view(agg, "consular_view")
    assert consulates["ConsularMission|PAN|PAN-CM-IND-01"]["also_accredited_to"] == ["CRI", "NIC"]
    assert len(_view(agg, "health_view")) == 5
    assert {r["country"] for r in _view(agg, "focal_point_view").values()} == {"PAN", "MEX"}
    again = _publish(members["PAN"], topic)
    assert all(c.new == c.revised == c.withdrawn == 0 for c in again.kinds.values())


def test_correction_replaces_and_history_keeps(federation: tuple[dict[str, Home], Home]) -> None:
    members, agg = federation
    pan = members["PAN"]
    topic = MemoryTopic()
    _publish(pan, topic)
    subject = "ConsularMission|PAN|PAN-CM-IND-01"
    corrections.correct(pan, subject, {"phone": "+507 200-0199", "languages": "en;es"}, "moved")
    plan = _publish(pan, topic)
    assert plan.kinds["ConsularMission"].revised == 1
    _apply(agg, topic)
    row = _view(agg, "consular_view")[subject]
    assert (row["phone"], row["languages"], row["_revision"]) == ("+507 200-0199", ["en", "es"], 2)
    history = corrections.history(agg, subject)["revisions"]
    assert [(h["revision"], h["action"], h["current"]) for h in history] == [
        (1, "publication", False),
        (2, "publication", True),
    ]
    assert history[0]["body"]["phone"] == "+507 200-0101"
    node_history = corrections.history(pan, history[1]["event_id"])
    assert [r["revision"] for r in node_history["revisions"]] == [1, 2]
    assert node_history["notes"][0]["reason"] == "moved"
    assert node_history["notes"][0]["changes"]["phone"] == "+507 200-0199"


def test_correction_is_validated_like_ingest(federation: tuple[dict[str, Home], Home]) -> None:
    pan = federation[0]["PAN"]
    subject = "ConsularMission|PAN|PAN-CM-IND-01"
    with pytest.raises(InputError, match="field 'sending_country': not an ISO 3166-1"):
        corrections.correct(pan, subject, {"sending_country": "ZZZ"})
    with pytest.raises(InputError, match="field 'mission_id': identifies the record"):
        corrections.correct(pan, subject, {"mission_id": "X"})
    with pytest.raises(InputError, match="field 'website': no such field"):
        corrections.correct(pan, subject, {"website": "x"})
    with pytest.raises(ConfigError, match="holds no reference record"):
        corrections.correct(pan, "ConsularMission|MEX|MEX-CM-IND-01", {"city": "X"})


def test_withdrawal_removes_from_view_keeps_history(
    federation: tuple[dict[str, Home], Home],
) -> None:
    members, agg = federation
    mex = members["MEX"]
    topic = MemoryTopic()
    _publish(mex, topic)
    _apply(agg, topic)
    subject = "HealthAdvisory|MEX|MEX-HA-2026-002"
    assert subject in _view(agg, "health_view")
    change = corrections.withdraw(mex, subject, "superseded by WHO")
    assert change.kind == "HealthAdvisory"
    with pytest.raises(ConfigError, match="already withdrawn"):
        corrections.withdraw(mex, subject)
    plan = _publish(mex, topic)
    assert plan.kinds["HealthAdvisory"].withdrawn == 1
    _apply(agg, topic)
    assert subject not in _view(agg, "health_view")
    history = corrections.history(agg, subject)["revisions"]
    assert [(h["action"], h["current"]) for h in history] == [
        ("publication", False),
        ("withdrawal", True),
    ]
    # Re-ingesting the file brings the advisory back as the next revision.
    for sample in sample_files("MEX"):
        ingest(mex, sample)
    _publish(mex, topic)
    _apply(agg, topic)
    assert _view(agg, "health_view")[subject]["_revision"] == 3


def test_withdrawn_flow_cell_stays_withdrawn(tmp_path: Path) -> None:
    from tests.factories import member_with_data

    home, _, _ = member_with_data(tmp_path, "PAN", 400)
    agg = aggregator_for(tmp_path, [home])
    topic = MemoryTopic()
    _publish(home, topic)
    _apply(agg, topic)
    first = topic.records[0]
    codec = event_codec()
    env = codec.decode_envelope(codec.split_signed(first.value or b"")[0])
    corrections.withdraw(home, env.event_id, "cell under review")
    _publish(home, topic)
    _apply(agg, topic)
    with PictureStore(agg.store_path) as store:
        assert env.subject not in {c["subject"] for c in store.flow_cells()}
    before = len(topic.records)
    _publish(home, topic)
    assert len(topic.records) == before, "a held cell is not published again"
    with pytest.raises(ConfigError, match="correct the records"):
        corrections.correct(home, env.subject, {"count": "1"})


def test_not_shared_exchange_publishes_nothing_and_withdraws(tmp_path: Path) -> None:
    policy = yaml.safe_load((policies_dir() / "GTM.yaml").read_text())
    home = _member(tmp_path, "GTM")
    for sample in sample_files("GTM"):
        ingest(home, sample)
    agg = aggregator_for(tmp_path, [home])
    topic = MemoryTopic()
    _publish(home, topic)
    _apply(agg, topic)
    assert len(_view(agg, "health_view")) == 1
    # The law changes: health advisories are no longer shared.
    policy["exchanges"]["health_advisories"] = {"shared": False}
    policy["version"] = "2024.2"
    unshared = tmp_path / "GTM-unshared.yaml"
    unshared.write_text(yaml.safe_dump(policy, allow_unicode=True))
    home.config.policy = str(unshared)
    home.save()
    plan = _publish(home, topic)
    health = plan.kinds["HealthAdvisory"]
    assert (health.shared, health.new, health.withdrawn) == (False, 0, 1)
    _apply(agg, topic)
    assert _view(agg, "health_view") == {}
    assert len(_view(agg, "legislation_view")) == 3


def test_restricted_intelligence_is_never_sent_unsealed(tmp_path: Path) -> None:
    policy = yaml.safe_load((policies_dir() / "PAN.yaml").read_text())
    policy["exchanges"]["intelligence"] = {
        "shared": True,
        "audiences": ["CRI"],
        "purposes": ["anti-smuggling"],
    }
    path = tmp_path / "PAN-intel.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True))
    home = _member(tmp_path, "PAN", policy=path)
    ingest(home, SAMPLES_DIR / "pan" / "intelligence.json")
    topic = MemoryTopic()
    plan = _publish(home, topic)  # no recipients given
    assert plan.kinds["IntelligenceReport"].held_restricted == 1
    assert topic.records == []


def test_another_producer_cannot_overwrite_a_members_entry(
    federation: tuple[dict[str, Home], Home],
) -> None:
    members, agg = federation
    topic = MemoryTopic()
    _publish(members["PAN"], topic)
    _apply(agg, topic)
    codec = event_codec()
    mex_key = SigningKey.load("MEX", members["MEX"].signing_key_path)
    real = codec.decode_envelope(codec.split_signed(topic.records[0].value or b"")[0])
    forged_body = codec.encode_body(
        "FocalPoint",
        {
            "country": "PAN",
            "focal_point_id": "PAN-FP-01",
            "name": "Impostor",
            "role": "R",
            "institution": "I",
            "email": "x@example.org",
        },
    )
    for subject in ("FocalPoint|PAN|PAN-FP-01", "FocalPoint|MEX|PAN-FP-01"):
        env = Envelope(
            **{
                **real.__dict__,
                "event_id": f"forged-{subject}",
                "producer": "MEX",
                "kind": "FocalPoint",
                "subject": subject,
                "revision": 99,
                "key_id": mex_key.key_id,
                "body": forged_body,
            }
        )
        env_bytes = codec.encode_envelope(env)
        topic.append(b"MEX", codec.encode_signed(env_bytes, mex_key.sign(env_bytes)))
    stats = _apply(agg, topic, start=len(topic.records) - 2)
    assert stats.rejected == {"subject-mismatch": 2}
    assert _view(agg, "focal_point_view")["FocalPoint|PAN|PAN-FP-01"]["name"] != "Impostor"


# -- reports ---------------------------------------------------------------------------


def test_reports_as_table_json_and_csv(federation: tuple[dict[str, Home], Home]) -> None:
    members, agg = federation
    topic = MemoryTopic()
    for home in members.values():
        _publish(home, topic)
    _apply(agg, topic)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, ["--home", str(agg.path), "report", *args])
        assert result.exit_code == 0, result.output
        return result.output

    table = run("legislation")
    assert "Legislation matrix (IOM mapping)" in table and "RATIFIED" in table
    matrix = json.loads(run("legislation", "--format", "json"))
    assert matrix["view"] == "legislation" and matrix["kind"] == "LegislationEntry"
    assert [r["country"] for r in matrix["rows"]][:1] == ["PAN"]
    assert {"country", "topic", "instrument", "revision", "event_id"} <= set(matrix["rows"][0])
    consulates = list(
        csv.DictReader(io.StringIO(run("consulates", "--origin", "ind", "--format", "csv")))
    )
    assert {r["host_country"] for r in consulates} == {"PAN", "MEX"}
    assert consulates[0]["also_accredited_to"] == "CRI;NIC"
    health = json.loads(run("health", "--format", "json", "--as-of", "2026-06-01"))
    origins = [r["country_of_origin"] for r in health["rows"]]
    assert origins == sorted(origins) and "COL" not in origins  # the 2025 advisory expired
    assert len(json.loads(run("health", "--format", "json", "--as-of", "2025-06-01"))["rows"]) == 1
    assert "Technical working group focal points" in run("focal-points")
    fp = json.loads(run("focal-points", "--format", "json", "--country", "MEX"))
    assert {r["country"] for r in fp["rows"]} == {"MEX"}
    flows = json.loads(run("--format", "json"))
    assert set(flows) >= {"generated_at", "flows", "events_applied", "rejected"}
    # No flows were published here: the CSV is its header alone.
    assert run("flows", "--format", "csv") == (
        "period,reporting_country,nationality,nationality_region,count,status,ci95,protected,unit\n"
    )


def test_the_aggregator_validates_bodies_again(
    federation: tuple[dict[str, Home], Home],
) -> None:
    """A node's validation is not trusted: a body outside the code lists is set aside."""
    members, agg = federation
    topic = MemoryTopic()
    _publish(members["PAN"], topic)
    codec = event_codec()
    pan_key = SigningKey.load("PAN", members["PAN"].signing_key_path)
    real = codec.decode_envelope(codec.split_signed(topic.records[0].value or b"")[0])
    body = {
        "host_country": "PAN",
        "mission_id": "PAN-CM-BAD",
        "sending_country": "XXX",
        "mission_type": "EMBASSY",
        "city": "Colón",
    }
    env = Envelope(
        **{
            **real.__dict__,
            "event_id": "bad-code-list",
            "kind": "ConsularMission",
            "subject": "ConsularMission|PAN|PAN-CM-BAD",
            "revision": 1,
            "body": codec.encode_body("ConsularMission", body),
        }
    )
    env_bytes = codec.encode_envelope(env)
    topic.append(b"PAN", codec.encode_signed(env_bytes, pan_key.sign(env_bytes)))
    stats = _apply(agg, topic)
    assert stats.rejected == {"invalid-body": 1}
    with PictureStore(agg.store_path) as store:
        (rejected,) = store.rejected()
    assert "ConsularMission.sending_country: not an ISO 3166-1 alpha-3" in rejected["detail"]
    assert "ConsularMission|PAN|PAN-CM-BAD" not in _view(agg, "consular_view")


@pytest.mark.parametrize(
    "kind",
    ["LegislationEntry", "ConsularMission", "HealthAdvisory", "FocalPoint", "IntelligenceReport"],
)
def test_each_model_has_exactly_its_latest_schemas_fields(kind: str) -> None:
    from node.model.reference import BY_KIND

    schema = event_codec().registry.latest(kind)
    assert list(BY_KIND[kind].model_fields) == [f["name"] for f in schema.raw["fields"]]


def test_a_broken_encounter_header_still_gets_the_encounter_error(tmp_path: Path) -> None:
    home = _member(tmp_path, "PAN")
    path = _write(tmp_path / "enc.csv", "document_number,family_name\nX1,Doe\n")
    with pytest.raises(InputError, match=r"enc\.csv:1: missing columns \['record_id'"):
        ingest(home, path)


def test_status_counts_reference_data(federation: tuple[dict[str, Home], Home]) -> None:
    members, agg = federation
    topic = MemoryTopic()
    _publish(members["MEX"], topic)
    _apply(agg, topic)
    corrections.withdraw(members["MEX"], "FocalPoint|MEX|MEX-FP-02")
    member = home_status(members["MEX"])["reference_items"]
    assert member == {
        "LegislationEntry": 4,
        "ConsularMission": 5,
        "HealthAdvisory": 2,
        "FocalPoint": 1,
        "IntelligenceReport": 0,
    }
    reference = home_status(agg)["reference"]
    assert isinstance(reference, dict)
    assert {k: reference[k] for k in ("legislation", "consular", "health", "focal_point")} == {
        "legislation": 4,
        "consular": 5,
        "health": 2,
        "focal_point": 2,
    }


def test_reference_list_tracks_each_records_state(
    federation: tuple[dict[str, Home], Home],
) -> None:
    pan = federation[0]["PAN"]
    runner = CliRunner()

    def states() -> dict[str, tuple[str, int | None]]:
        out = runner.invoke(
            main,
            [
                "--home",
                str(pan.path),
                "reference",
                "list",
                "--kind",
                "ConsularMission",
                "--format",
                "json",
            ],
        )
        assert out.exit_code == 0, out.output
        return {r["id"]: (r["state"], r["published_revision"]) for r in json.loads(out.output)}

    assert states()["PAN-CM-IND-01"] == ("pending", None) and len(states()) == 5
    topic = MemoryTopic()
    _publish(pan, topic)
    assert set(states().values()) == {("published", 1)}
    corrections.correct(pan, "ConsularMission|PAN|PAN-CM-CUB-01", {"city": "Colón"})
    corrections.withdraw(pan, "ConsularMission|PAN|PAN-CM-HTI-01")
    now = states()
    assert now["PAN-CM-CUB-01"] == ("pending", 1)
    assert now["PAN-CM-HTI-01"] == ("withdrawal pending", 1)
    _publish(pan, topic)
    now = states()
    assert now["PAN-CM-CUB-01"] == ("published", 2) and now["PAN-CM-HTI-01"] == ("withdrawn", 2)
    table = runner.invoke(main, ["--home", str(pan.path), "reference", "list"])
    assert "LegislationEntry|PAN|PAN-LEG-001" in table.output
