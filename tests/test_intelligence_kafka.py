"""Restricted intelligence on the real broker: read by its addressees only."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from node.aggregator.run import aggregate_once
from node.config import Home, policies_dir
from node.federation import drafts, trust
from node.federation.control import publish_manifest, sync_manifest
from node.member.inbox import read_inbox
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.store.picture import PictureStore
from tests.factories import aggregator_for

SECRET_SUMMARY = "Lancha Azul network moves groups from Necocli to Carreto at night"
SECRET_TITLE = "Operacion Garza Blanca"


def _policy_with_intelligence(tmp_path: Path, country: str, to: list[str]) -> Path:
    data = yaml.safe_load((policies_dir() / f"{country}.yaml").read_text(encoding="utf-8"))
    data["exchanges"]["intelligence"] = {
        "shared": True,
        "legal_basis": "Illustrative: bilateral intelligence-sharing memorandum",
        "audiences": to,
        "purposes": ["anti-smuggling"],
        "retention_days": 365,
    }
    path = tmp_path / f"{country}-intel.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _home(
    tmp_path: Path, country: str, bootstrap: str, topic: str, policy: Path | None = None
) -> Home:
    home = init_member(
        tmp_path / country.lower(), country, policy=policy, bootstrap=bootstrap, topic=topic
    )
    home.config.kafka.control_topic = f"{topic}.control"
    home.save()
    return home


def _all_bytes(bootstrap: str, *topics: str) -> list[bytes]:
    from node.transport.kafka_consumer import read_all

    out: list[bytes] = []
    for t in topics:
        for m in read_all(bootstrap, t):
            out.extend(x for x in (m.key, m.value) if x)
    return out


def test_report_to_gtm_and_mex_is_read_by_both_and_nobody_else(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    cri = _home(
        tmp_path,
        "CRI",
        kafka_bootstrap,
        topic,
        _policy_with_intelligence(tmp_path, "CRI", ["GTM", "MEX"]),
    )
    gtm = _home(tmp_path, "GTM", kafka_bootstrap, topic)
    mex = _home(tmp_path, "MEX", kafka_bootstrap, topic)
    pan = _home(tmp_path, "PAN", kafka_bootstrap, topic)
    agg = aggregator_for(tmp_path, [cri, gtm, mex, pan], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.config.kafka.control_topic = f"{topic}.control"
    agg.save()
    # Per-test control and picture topics, named in the manifest.
    draft = drafts.load_draft(agg)
    topics = draft.topics.model_copy(
        update={"control": f"{topic}.control", "picture": f"{topic}.picture"}
    )
    drafts.save_draft(agg, draft.model_copy(update={"topics": topics}))
    drafts.sign_draft(agg)
    publish_manifest(agg)
    for member in (cri, gtm, mex, pan):
        manifest, _ = sync_manifest(member)
        assert manifest.topics.picture == f"{topic}.picture"

    report = tmp_path / "intel.json"
    report.write_text(
        json.dumps(
            [
                {
                    "reporting_country": "CRI",
                    "report_id": "CRI-INT-2024-007",
                    "title": SECRET_TITLE,
                    "category": "SMUGGLING_ROUTE",
                    "summary": SECRET_SUMMARY,
                    "countries_involved": ["COL", "PAN", "CRI"],
                    "period_start": "2024-02-01",
                    "confidence": "MEDIUM",
                    "handling": "not for onward disclosure",
                }
            ]
        ),
        encoding="utf-8",
    )
    assert ingest(cri, report).stored == 1
    result = publish(cri)
    assert result.drain.acknowledged >= 1

    stats = aggregate_once(agg)
    assert stats.rejected_total == 0
    with PictureStore(agg.store_path) as store:
        relayed = store.restricted_events()
    assert len(relayed) == 1 and relayed[0]["producer"] == "CRI"
    assert relayed[0]["relayed_at"] is not None

    for reader in (gtm, mex):
        inbox = read_inbox(reader)
        assert [i.body["summary"] for i in inbox.items if i.body] == [SECRET_SUMMARY]
        assert inbox.items[0].signed_by == trust.load_signing_key(cri).key_id
    outsider = read_inbox(pan)
    assert outsider.items == [] and outsider.not_addressed == 1

    # The Secretariat holds no key it could open it with, and nothing on any
    # topic carries the report's text.
    assert not agg.encryption_key_path.exists()
    blobs = _all_bytes(kafka_bootstrap, topic, f"{topic}.picture", f"{topic}.control")
    assert blobs
    for secret in (SECRET_SUMMARY, SECRET_TITLE, "Necocli", "onward disclosure"):
        assert not any(secret.encode() in b for b in blobs), secret
