"""A Secretariat that plays the attacker through the public CLI, on the real broker.

It signs every manifest (its signature is still necessary), but it no longer
decides alone who is a member or whose keys count: a member it enrols without
a quorum of members' approvals gets no linkage key and no intelligence, and a
member's key it replaces without the member's own signature is refused by
every node and by the aggregator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from node.aggregator.run import aggregate_once
from node.cli import main
from node.config import Home, policies_dir
from node.crypto.sealing import NotAddressed, SealedBox, open_sealed
from node.demo.synth import generate_encounters, write_csv
from node.federation import drafts, trust
from node.home import event_codec
from node.member.event_factory import restricted_aad
from node.member.inbox import read_inbox
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.store.picture import PictureStore
from node.transport.kafka_consumer import read_all
from tests.factories import START, aggregator_for

SUMMARY = "Lancha Azul network moves groups from Necocli to Carreto at night"
FOUNDERS = ("CRI", "GTM", "MEX", "USA")


def cli(home: Home, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--home", str(home.path), *args], input=input)


def ok(home: Home, *args: str) -> str:
    result = cli(home, *args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def _intel_policy(tmp_path: Path, country: str, to: list[str]) -> Path:
    data = yaml.safe_load((policies_dir() / f"{country}.yaml").read_text(encoding="utf-8"))
    data["exchanges"]["intelligence"] = {
        "shared": True,
        "legal_basis": "Illustrative: intelligence-sharing memorandum",
        "audiences": to,
        "purposes": ["anti-smuggling"],
        "retention_days": 365,
    }
    path = tmp_path / f"{country}-intel.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _member(
    tmp_path: Path, country: str, bootstrap: str, topic: str, policy: Path | None = None
) -> Home:
    home = init_member(
        tmp_path / country.lower(), country, policy=policy, bootstrap=bootstrap, topic=topic
    )
    home.config.kafka.control_topic = f"{topic}.control"
    home.save()
    return home


@pytest.fixture
def federation(tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str) -> dict[str, Home]:
    """Four founders who pinned the founding list, and the Secretariat."""
    homes = {
        c: _member(
            tmp_path,
            c,
            kafka_bootstrap,
            topic,
            _intel_policy(tmp_path, c, ["members"]) if c == "CRI" else None,
        )
        for c in FOUNDERS
    }
    agg = aggregator_for(tmp_path, list(homes.values()), topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.config.kafka.control_topic = f"{topic}.control"
    agg.save()
    draft = drafts.load_draft(agg)
    topics = draft.topics.model_copy(
        update={"control": f"{topic}.control", "picture": f"{topic}.picture"}
    )
    drafts.save_draft(agg, draft.model_copy(update={"topics": topics}))
    ok(agg, "federation", "sign", "--publish")
    founders = tmp_path / "founders.json"
    out = ok(agg, "federation", "founders", "-o", str(founders), "--pin")
    digest = out.split("founders digest ")[1].split()[0]
    for home in homes.values():
        ok(home, "federation", "sync")
        # The digest is what founding members compare out of band.
        ok(home, "federation", "pin-founders", str(founders), "--digest", digest)
    homes["TS"] = agg
    return homes


def _attacker_member(tmp_path: Path, country: str, bootstrap: str, topic: str) -> Home:
    """A home whose keys the Secretariat holds."""
    return _member(tmp_path / "attacker", country, bootstrap, topic)


def _publish_intel(cri: Home, tmp_path: Path, title: str) -> None:
    report = tmp_path / f"{title}.json"
    report.write_text(
        json.dumps(
            [
                {
                    "reporting_country": "CRI",
                    "report_id": f"CRI-INT-{title}",
                    "title": title,
                    "category": "SMUGGLING_ROUTE",
                    "summary": SUMMARY,
                    "countries_involved": ["COL", "PAN", "CRI"],
                    "period_start": "2024-02-01",
                    "confidence": "MEDIUM",
                }
            ]
        ),
        encoding="utf-8",
    )
    assert ingest(cri, report).stored == 1
    assert publish(cri).drain.acknowledged >= 1


def test_fake_member_without_quorum_gets_no_linkage_key_and_no_intelligence(
    federation: dict[str, Home], tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    agg, usa, cri, gtm = federation["TS"], federation["USA"], federation["CRI"], federation["GTM"]
    hnd = _attacker_member(tmp_path, "HND", kafka_bootstrap, topic)
    trust.pin_secretariat(hnd, agg.secretariat_pub_path.read_text(encoding="ascii"))
    ok(
        agg,
        "federation",
        "add-member",
        "HND",
        "--signing-key",
        str(hnd.public_key_path),
        "--encryption-key",
        str(hnd.encryption_pub_path),
    )
    ok(agg, "federation", "sign", "--publish")

    # Every node's sync flags the enrolment, and says it does not count.
    for country in FOUNDERS:
        out = ok(federation[country], "federation", "sync")
        assert "+ member HND (member) added; NOT counted: no quorum" in out, out
        assert "lacks quorum (0/3)" in out and "admit HND as member" in out, out
        assert "verifies under the Secretariat's key but not under quorum" in out, out
        doctor = cli(federation[country], "doctor", "--format", "json")
        checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["membership"]["status"] == "problem", checks["membership"]
        assert "HND" in checks["membership"]["detail"]

    # linkage share names its recipients before sealing, and HND is not one.
    ok(usa, "linkage", "init")
    out = ok(usa, "linkage", "share")
    assert "sealing the linkage key to: CRI, GTM, MEX" in out, out
    assert "HND" not in out
    assert "stored" in ok(gtm, "linkage", "sync")
    ok(hnd, "federation", "sync")
    refused = cli(hnd, "linkage", "sync")
    assert refused.exit_code != 0 and "not addressed" in refused.output, refused.output
    assert not hnd.linkage_key_path.exists()

    # Intelligence for "members" is sealed to the counted members only.
    _publish_intel(cri, tmp_path, "Garza")
    stats = aggregate_once(agg)
    assert stats.rejected_total == 0, stats.rejected
    assert [i.body["summary"] for i in read_inbox(gtm).items if i.body] == [SUMMARY]
    fake = read_inbox(hnd)
    assert fake.items == [] and fake.not_addressed == 1


def test_member_admitted_once_a_quorum_approves(
    federation: dict[str, Home], tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    """The positive path: the same enrolment counts after 3 of 4 founders approve."""
    agg, usa = federation["TS"], federation["USA"]
    hnd = _member(tmp_path, "HND", kafka_bootstrap, topic)
    trust.pin_secretariat(hnd, agg.secretariat_pub_path.read_text(encoding="ascii"))
    ok(
        agg,
        "federation",
        "add-member",
        "HND",
        "--signing-key",
        str(hnd.public_key_path),
        "--encryption-key",
        str(hnd.encryption_pub_path),
    )
    ok(agg, "federation", "sign", "--publish")
    out = ok(usa, "federation", "sync")
    change_id = out.split("! change ")[1].split()[0]
    # The Secretariat cannot approve: only members decide.
    assert cli(agg, "federation", "approve", change_id).exit_code != 0
    for country in ("GTM", "MEX"):
        ok(federation[country], "federation", "sync")
        assert "approved" in ok(federation[country], "federation", "approve", change_id)
    out = ok(usa, "federation", "sync")
    assert f"change {change_id} lacks quorum (2/3: GTM, MEX)" in out, out
    ok(federation["CRI"], "federation", "sync")
    ok(federation["CRI"], "federation", "approve", change_id)
    out = ok(usa, "federation", "sync")
    assert f"= change {change_id} approved by CRI, GTM, MEX" in out, out
    assert trust.trust_view(usa).is_member("HND")
    ok(usa, "linkage", "init")
    assert "sealing the linkage key to: CRI, GTM, HND, MEX" in ok(usa, "linkage", "share")
    ok(hnd, "federation", "sync")
    assert "stored" in ok(hnd, "linkage", "sync")


def test_replaced_key_without_members_signature_is_refused_everywhere(
    federation: dict[str, Home], tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    agg, cri, gtm = federation["TS"], federation["CRI"], federation["GTM"]
    evil = _attacker_member(tmp_path, "GTM", kafka_bootstrap, topic)  # keys the Secretariat holds
    ok(
        agg,
        "federation",
        "add-member",
        "GTM",
        "--signing-key",
        str(evil.public_key_path),
        "--encryption-key",
        str(evil.encryption_pub_path),
    )
    ok(agg, "federation", "sign", "--publish")
    evil_sign = trust.load_signing_key(evil).key_id
    evil_enc = trust.load_encryption_key(evil)
    for country in FOUNDERS:
        out = ok(federation[country], "federation", "sync")
        assert f"~ GTM new signing key {evil_sign}: REJECTED" in out, out
        assert f"~ GTM new encryption key {evil_enc.key_id}: REJECTED" in out, out
    shown = json.loads(ok(cri, "federation", "show", "--format", "json"))
    assert {evil_sign, evil_enc.key_id} <= set(shown["trust_view"]["rejected_keys"])
    assert shown["trust_view"]["counted"]["GTM"] == "member"

    # Reports keep going to GTM's real key; the substituted key opens nothing.
    cri_policy = yaml.safe_load(cri.policy_path.read_text(encoding="utf-8"))
    cri_policy["exchanges"]["intelligence"]["audiences"] = ["GTM"]
    cri.policy_path.write_text(yaml.safe_dump(cri_policy, sort_keys=False), encoding="utf-8")
    _publish_intel(cri, tmp_path, "Garza")
    stats = aggregate_once(agg)
    assert stats.rejected_total == 0, stats.rejected
    assert [i.body["summary"] for i in read_inbox(gtm).items if i.body] == [SUMMARY]
    with PictureStore(agg.store_path) as store:
        relayed = store.restricted_events()
    values = [m.value for m in read_all(kafka_bootstrap, f"{topic}.picture") if m.value]
    assert values and relayed
    codec = event_codec()
    tried_evil_key = 0
    for value in values:
        env = codec.decode_envelope(codec.split_signed(value)[0])
        if env.body is None or env.kind != "IntelligenceReport":
            continue
        aad = restricted_aad(env.event_id, env.producer, env.kind, env.subject, env.revision)
        with pytest.raises(NotAddressed):
            open_sealed(SealedBox.from_bytes(env.body), evil_enc.key_id, evil_enc.private, aad)
        tried_evil_key += 1
    assert tried_evil_key == 1

    # The aggregator refuses events signed with the substituted signing key.
    csv = tmp_path / "gtm.csv"
    write_csv(generate_encounters("GTM", 800, seed=3, start=START, weeks=2), csv)
    assert ingest(evil, csv).stored == 800
    sent = publish(evil).drain.acknowledged
    assert sent > 0
    stats = aggregate_once(agg)
    assert stats.applied == 0 and stats.rejected.get("unknown-key") == sent, stats.rejected


def test_rotation_signed_by_the_member_is_accepted(federation: dict[str, Home]) -> None:
    """Positive control: a rotation the member signed counts on every node."""
    agg, gtm = federation["TS"], federation["GTM"]
    old_id = trust.load_signing_key(gtm).key_id
    out = ok(gtm, "keys", "rotate")
    new_id = trust.load_signing_key(gtm).key_id
    statement = trust.rotation_statement_path(gtm, new_id)
    assert statement.is_file() and old_id in out
    ok(
        agg,
        "federation",
        "add-member",
        "GTM",
        "--signing-key",
        str(gtm.public_key_path),
        "--statement",
        str(statement),
    )
    ok(agg, "federation", "sign", "--publish")
    for country in FOUNDERS:
        out = ok(federation[country], "federation", "sync")
        assert f"~ GTM new signing key {new_id}: signed by {old_id}" in out, out
    assert trust.key_directory(agg).get(new_id) is not None


def test_a_member_revokes_its_own_key_without_quorum_or_secretariat(
    federation: dict[str, Home], tmp_path: Path
) -> None:
    """GTM revokes its own signing key on the control topic; the Secretariat signs
    nothing, and the aggregator then refuses what that key signs."""
    agg, gtm, cri = federation["TS"], federation["GTM"], federation["CRI"]
    key_id = trust.load_signing_key(gtm).key_id
    out = ok(gtm, "federation", "revoke-own", "--key", key_id)
    assert f"revoked {key_id}" in out
    csv = tmp_path / "gtm-own.csv"
    write_csv(generate_encounters("GTM", 800, seed=5, start=START, weeks=2), csv)
    assert ingest(gtm, csv).stored == 800
    sent = publish(gtm).drain.acknowledged
    assert sent > 0
    stats = aggregate_once(agg)
    assert stats.applied == 0 and stats.rejected.get("revoked-key") == sent, stats.rejected
    ok(cri, "federation", "sync")
    held = trust.key_directory(cri).get(key_id)
    assert held is not None and held.entry.revoked_at is not None


def test_linkage_share_asks_before_sealing_to_a_new_member(
    federation: dict[str, Home], tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    usa = federation["USA"]
    usa.config.confirm_new_linkage_recipients = True
    usa.save()
    ok(usa, "linkage", "init")
    first = cli(usa, "linkage", "share", input="n\n")
    assert first.exit_code != 0 and "never received it from this node" in first.output
    assert "CRI, GTM, MEX never received" in first.output, first.output
    values = [m.key for m in read_all(kafka_bootstrap, f"{topic}.control")]
    assert b"linkage-key" not in values  # nothing was sealed
    assert "linkage key sealed to CRI, GTM, MEX" in cli(usa, "linkage", "share", input="y\n").output
    # Known recipients: no question the next time.
    again = cli(usa, "linkage", "share")
    assert again.exit_code == 0 and "never received" not in again.output
