"""`corredor demo` and the CLI slice, driven as an operator would, on the real broker."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import yaml
from click.testing import CliRunner

from node.cli import main
from node.config import load_home
from node.demo.synth import generate_encounters, write_csv
from node.member.inbox import read_inbox


def test_demo_runs_the_federation_and_prints_the_picture(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    runner = CliRunner()
    directory = tmp_path / "demo"
    result = runner.invoke(
        main, ["demo", "--dir", str(directory), "--bootstrap", kafka_bootstrap, "--scale", "0.2"]
    )
    assert result.exit_code == 0, result.output
    assert "Encounters, 2024-W12" in result.output
    assert "0 set aside" in result.output
    assert "Alerts for 2024-W12" in result.output
    # The demo writes the Secretariat's HTML report and says where; it renders.
    html = directory / "report.html"
    assert "HTML report:" in result.output and str(html) in result.output.replace("\n", "")
    from tests.browser import assert_report_rendered

    shots = Path(os.environ.get("CORREDOR_SCREENSHOT_DIR", tmp_path))
    page = assert_report_rendered(html, shots / "demo-report.png")
    assert "nationality: CHN" in page.dom  # the planted surge is an alert
    report = runner.invoke(
        main, ["--home", str(directory / "secretariat"), "report", "--format", "json"]
    )
    picture = json.loads(report.output)
    assert {r["reporting_country"] for r in picture["flows"]} == {"PAN", "CRI", "GTM", "MEX"}
    assert set(picture["flows"][0]) == {
        "period",
        "reporting_country",
        "nationality",
        "nationality_region",
        "count",
        "status",
        "ci95",
        "protected",
    }
    assert picture["unit"] == "encounters"
    assert picture["rejected"] == 0
    # The picture published back: Mexico's node reads it from the picture topic,
    # verifies each producer's signature, and sees what the Secretariat's export
    # for Mexico holds.
    mex = runner.invoke(main, ["--home", str(directory / "mex"), "report", "--format", "json"])
    assert mex.exit_code == 0, mex.output
    mine = json.loads(mex.stdout)
    for_mex = runner.invoke(
        main,
        [
            "--home",
            str(directory / "secretariat"),
            "report",
            "--format",
            "json",
            "--audience",
            "MEX",
        ],
    )
    assert mine["audience"] == "MEX" and mine["flows"] == json.loads(for_mex.output)["flows"]
    assert {r["reporting_country"] for r in mine["flows"]} == {"PAN", "CRI", "GTM", "MEX"}
    # What went back to the members is in the Secretariat's audit chain, which verifies.
    chain = runner.invoke(
        main, ["--home", str(directory / "secretariat"), "audit", "export", "--format", "jsonl"]
    )
    entries = [json.loads(line) for line in chain.output.splitlines() if line.strip()]
    assert sum(e["entry"] == "published" for e in entries) > 0
    verify = runner.invoke(main, ["--home", str(directory / "secretariat"), "audit", "verify"])
    assert verify.exit_code == 0, verify.output
    # Every reference kind was exchanged, and the demo's correction and withdrawal show.
    for title in ("Legislation matrix", "consular directory", "health advisories", "focal points"):
        assert title in result.output
    ts = ["--home", str(directory / "secretariat"), "report"]

    def rows(view: str) -> list[dict[str, object]]:
        out = runner.invoke(main, [*ts, view, "--format", "json", "--as-of", "2026-06-01"])
        assert out.exit_code == 0, out.output
        return list(json.loads(out.output)["rows"])

    everyone = {"PAN", "CRI", "GTM", "MEX"}
    assert {r["country"] for r in rows("legislation")} == everyone
    assert {r["country"] for r in rows("focal-points")} == everyone
    missions = {r["mission_id"]: r for r in rows("consulates")}
    assert {r["host_country"] for r in missions.values()} == everyone
    assert missions["PAN-CM-IND-01"]["phone"] == "+507 200-0199"
    assert missions["PAN-CM-IND-01"]["revision"] == 2
    advisories = {r["advisory_id"] for r in rows("health")}
    assert "MEX-HA-2026-001" in advisories and "MEX-HA-2026-002" not in advisories
    # Panama's restricted intelligence reached the members sealed, not the Secretariat.
    for member in ("cri", "gtm", "mex"):
        inbox = read_inbox(load_home(directory / member))
        assert [i.subject for i in inbox.items] == ["IntelligenceReport|PAN|PAN-INT-2026-004"]
    history = runner.invoke(
        main,
        [*ts[:2], "history", "IntelligenceReport|PAN|PAN-INT-2026-004", "--format", "json"],
    )
    (relayed,) = json.loads(history.output)["revisions"]
    assert relayed["body"] is None and relayed["action"] == "publication"


def test_operator_walkthrough_through_the_cli(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == 0, (args, result.output)
        return result.output

    pan, ts = tmp_path / "pan", tmp_path / "ts"
    run(
        "init",
        "--country",
        "PAN",
        "--home",
        str(pan),
        "--bootstrap",
        kafka_bootstrap,
        "--topic",
        topic,
    )
    run("init", "--aggregator", "--home", str(ts), "--bootstrap", kafka_bootstrap, "--topic", topic)
    cfg = yaml.safe_load((ts / "corredor.yaml").read_text())
    cfg["kafka"]["group_id"] = group_id
    (ts / "corredor.yaml").write_text(yaml.safe_dump(cfg))
    pem = tmp_path / "pan.pub"
    pem.write_text(run("--home", str(pan), "keys", "export-public"))
    assert pem.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "PAN:" in run("--home", str(ts), "member", "add", "PAN", str(pem))

    rows = generate_encounters("PAN", 1500, seed=9, start=date(2024, 1, 1), weeks=3)
    rows[3]["sex"] = "unknown"
    data = tmp_path / "pan.csv"
    write_csv(rows, data)
    out = json.loads(run("--home", str(pan), "ingest", str(data), "--format", "json"))
    assert (out["stored"], out["rejected"]) == (1499, 1)
    assert out["errors"] == [f"{data}:5: field 'sex': Input should be 'F', 'M' or 'X'"]
    pub = json.loads(run("--home", str(pan), "publish", "--format", "json"))
    assert pub["acknowledged"] == pub["published_cells"] > 0 and pub["outbox_pending"] == 0
    agg = json.loads(run("--home", str(ts), "aggregate", "--once", "--format", "json"))
    assert agg["applied"] == pub["acknowledged"] and agg["rejected"] == 0
    assert "Encounters, 2024-W03" in run("--home", str(ts), "report")
    status = json.loads(run("--home", str(pan), "status", "--format", "json"))
    assert status["records"] == 1499 and status["outbox_acknowledged"] == pub["acknowledged"]
