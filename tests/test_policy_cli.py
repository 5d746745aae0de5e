"""The policy commands: golden output of preview and policy diff on a fixed
data set, policy check's exit status, policy explain of a published event.

Regenerate the golden files with CORREDOR_UPDATE_GOLDEN=1 after a deliberate
change, and read the diff before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from node.cli import main
from node.config import Home, policies_dir
from node.demo.synth import generate_encounters, write_csv
from node.member.drain import drain_outbox
from node.member.flow_release import plan_flow_release
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.member.staging import stage_publication
from node.store.node_store import NodeStore
from node.transport.memory import MemorySink, MemoryTopic
from tests.factories import START

GOLDEN = Path(__file__).parent / "golden"
#: Frozen copies of the policies the golden files were made with, so that a
#: change to a shipped policy does not change the engine's golden output.
GOLDEN_POLICIES = GOLDEN / "policies"
FIXED_KEY = "11" * 32  # pseudonyms in samples must not change between runs


def _home(tmp_path: Path, country: str, n: int = 900, policy: Path | None = None) -> Home:
    """A home with the fixed data set: seeded synthetic records, a fixed key."""
    home = init_member(tmp_path / country.lower(), country, policy=policy)
    rows = generate_encounters(country, n, seed=2016, start=START, weeks=6)
    write_csv(rows, tmp_path / f"{country}.csv")
    # Nothing published yet: preview and diff show a first release.
    assert ingest(home, tmp_path / f"{country}.csv", stage=False).stored == n
    home.pseudonym_key_path.write_text(FIXED_KEY + "\n", encoding="ascii")
    return home


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CORREDOR_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing {path}: run with CORREDOR_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("country", ["USA", "HND", "MEX"])
def test_preview_golden(tmp_path: Path, country: str) -> None:
    home = _home(tmp_path, country, policy=GOLDEN_POLICIES / f"{country}.yaml")
    _golden(f"preview-{country}.txt", _cli("--home", str(home.path), "preview"))
    data = json.loads(_cli("--home", str(home.path), "preview", "--format", "json"))
    _golden(f"preview-{country}.json", json.dumps(data, indent=2, sort_keys=True) + "\n")


def test_preview_shows_the_differences_the_law_makes(tmp_path: Path) -> None:
    def flows(country: str) -> dict[str, Any]:
        data = json.loads(
            _cli(
                "--home",
                str(_home(tmp_path / country, country).path),
                "preview",
                "--format",
                "json",
            )
        )
        return next(e for e in data["exchanges"] if e["kind"] == "FlowStatistic")

    assert "sex" not in flows("MEX")["fields"]
    hnd = flows("HND")
    assert hnd["fields"] == sorted(
        ["count", "nationality_region", "obs_status", "period", "period_type", "reporting_country"]
    )
    assert all(s["period_type"] in ("MONTH", "QUARTER") for s in hnd["samples"])


def test_policy_diff_golden(tmp_path: Path) -> None:
    old, new = GOLDEN_POLICIES / "PAN.yaml", GOLDEN_POLICIES / "PAN-draft.yaml"
    home = _home(tmp_path, "PAN", policy=old)
    out = _cli("--home", str(home.path), "policy", "diff", str(old), str(new))
    _golden("policy-diff-PAN.txt", out.replace(str(old), "<OLD>").replace(str(new), "<NEW>"))
    data = json.loads(
        _cli("--home", str(home.path), "policy", "diff", str(old), str(new), "--format", "json")
    )
    flows = next(e for e in data["exchanges"] if e["kind"] == "FlowStatistic")
    assert flows["fields_removed"] == ["sex"]
    assert flows["audiences_added"] == ["IOM"]
    records = next(e for e in data["exchanges"] if e["kind"] == "EncounterRecord")
    assert records["metrics"]["shared"] == {"old": False, "new": True}
    # PAN-draft sends records to members, who get the flows: the records of
    # flow cells not published alone stay home (the golden file has the number)
    assert 0 < records["metrics"]["events"]["new"] < 900


def test_policy_diff_refuses_another_countrys_policy(tmp_path: Path) -> None:
    home = _home(tmp_path, "PAN", n=50)
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(home.path),
            "policy",
            "diff",
            str(policies_dir() / "PAN.yaml"),
            str(policies_dir() / "CRI.yaml"),
        ],
    )
    assert result.exit_code == 1
    assert "CRI's policy; this home is PAN" in result.output


def test_policy_check_passes_the_shipped_policies() -> None:
    result = CliRunner().invoke(main, ["policy", "check"])
    assert result.exit_code == 0, result.output
    for country in ("CAN", "CRI", "DOM", "SLV", "GTM", "HND", "MEX", "PAN", "USA"):
        assert f"{country}.yaml: {country} " in result.output
    assert "regional.yaml: regional floor" in result.output


def test_policy_check_fails_with_located_errors(tmp_path: Path) -> None:
    data = yaml.safe_load((policies_dir() / "CRI.yaml").read_text())
    data["exchanges"]["flow_statistics"]["min_cell_size"] = 2
    data["exchanges"]["flow_statistics"]["dimensions"].append("eye_colour")
    weak = tmp_path / "CRI-weak.yaml"
    weak.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    below = tmp_path / "CRI-below.yaml"
    data["exchanges"]["flow_statistics"]["dimensions"].pop()
    below.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["policy", "check", str(policies_dir() / "PAN.yaml"), str(weak), str(below)]
    )
    assert result.exit_code == 1
    assert "ok    " in result.output and "PAN.yaml" in result.output
    assert f"{weak}: exchanges.flow_statistics.dimensions[4]: Input should be" in result.output
    assert (
        f"{below}: exchanges.flow_statistics.min_cell_size: 2 is below the regional floor"
        in result.output
    )


def test_policy_explain_names_the_version_and_rules(tmp_path: Path) -> None:
    home = _home(tmp_path, "PAN", n=400)
    with NodeStore(home.store_path) as store:
        plan, _ = stage_publication(home, store, home_policy(home))
        drain_outbox(store, MemorySink(MemoryTopic()))
    event = plan.events[0]
    data = json.loads(
        _cli("--home", str(home.path), "policy", "explain", event.event_id, "--format", "json")
    )
    policy = home_policy(home)
    assert data["policy"] == {
        "id": "PAN-policy",
        "version": policy.version,
        "sha256": policy.sha256,
        "source": "archived at publish",
        "current": True,
    }
    assert data["subject"] == event.subject
    assert any("min_cell_size 5" in rule for rule in data["rules"])
    assert data["sent"]["offset"] == 0
    text = _cli("--home", str(home.path), "policy", "explain", event.event_id)
    assert f"let out by PAN-policy {policy.version} sha256 {policy.sha256}" in text
    result = CliRunner().invoke(main, ["--home", str(home.path), "policy", "explain", "nope"])
    assert result.exit_code == 1 and "no event nope" in result.output


def test_policy_commands_are_listed() -> None:
    out = _cli("--help")
    assert "policy" in out and "preview" in out


def test_preview_writes_and_sends_nothing(tmp_path: Path) -> None:
    home = _home(tmp_path, "USA", n=200)
    _cli("--home", str(home.path), "preview")
    with NodeStore(home.store_path) as store:
        assert store.outbox_status().pending == 0
        assert (
            store.ledger("FlowStatistic") == {} and store.suppression_ledger("FlowStatistic") == {}
        )
        assert store.ledger("EncounterRecord") == {}


@pytest.mark.parametrize("country", ["USA", "PAN", "HND"])
def test_preview_shows_exactly_what_was_staged(tmp_path: Path, country: str) -> None:
    home = _home(tmp_path, country, n=600)  # ingest stages what the policy lets out
    with NodeStore(home.store_path) as store:
        stage_publication(home, store, home_policy(home))
        live = {
            kind: {s for s, (_, content) in store.ledger(kind).items() if content is not None}
            for kind in ("FlowStatistic", "EncounterRecord")
        }
    data = json.loads(_cli("--home", str(home.path), "preview", "--format", "json"))
    for ex in data["exchanges"]:
        if ex["kind"] in live:
            assert ex["events"] == len(live[ex["kind"]]), ex["kind"]


def test_policy_audit_passes_on_what_the_engine_published_and_fails_on_a_leak(
    tmp_path: Path,
) -> None:
    from node.policy.ledger import BlockLedger, PastRelease

    home = _home(tmp_path, "HND", n=600)
    with NodeStore(home.store_path) as store:
        stage_publication(home, store, home_policy(home))
        drain_outbox(store, MemorySink(MemoryTopic()))
    result = CliRunner().invoke(
        main, ["--home", str(home.path), "policy", "audit", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    flows = data["exchanges"][0]
    assert data["passes"] and flows["blocks"] > 0 and flows["protection"] == 5
    assert flows["protected"] == flows["hidden"]
    table = _cli("--home", str(home.path), "policy", "audit")
    assert "protection level   5" in table and "passes             yes" in table
    # A release as the old engine could make it (issue 15, case 1): a hidden 4
    # beside a published complement and the monthly national total (a margin
    # then, a table now: level -1) pins it.
    with NodeStore(home.store_path) as store:
        _, text = sorted(store.suppression_ledger("FlowStatistic").items())[0]
        ledger = BlockLedger.from_json(text)
        period = "2099-01"
        small, big = (period, ("Caribbean",)), (period, ("Central America",))
        leak = PastRelease(
            {small: 4, big: 40}, ((0, frozenset({big})), (-1, frozenset({small, big})))
        )
        leaked = BlockLedger(ledger.shape, leak.atoms, leak.cells, history=(leak,))
        store.stage([], {("FlowStatistic", "2099-Q1"): leaked.to_json()})
    result = CliRunner().invoke(
        main, ["--home", str(home.path), "policy", "audit", "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    flows = data["exchanges"][0]
    assert flows["failing_blocks"] == ["2099-Q1"]
    assert flows["narrowest"]["width"] == 0 and flows["narrowest"]["period"] == period


def test_policy_diff_names_the_cells_a_shape_change_would_expose(tmp_path: Path) -> None:
    """Issue 15, case 3: dropping ``sex`` after publishing by it. The diff names
    each hidden count of the old releases the new shape would make determinable
    or narrower than the protection level, and the cells publish holds back;
    publishing then sends none of those cells, and the old releases' counts
    stay protected (the engine's own audit model across shapes)."""
    new = GOLDEN_POLICIES / "PAN-draft.yaml"
    old = tmp_path / "PAN.yaml"  # a copy: the home's policy file is replaced below
    old.write_text((GOLDEN_POLICIES / "PAN.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    home = _home(tmp_path, "PAN", n=300, policy=old)
    args = ["--home", str(home.path), "policy", "diff", str(old), str(new), "--format", "json"]
    data = json.loads(_cli(*args))
    assert data["warnings"] == [] and data["shape_check"] is None  # nothing published yet
    with NodeStore(home.store_path) as store:
        stage_publication(home, store, home_policy(home))
        drain_outbox(store, MemorySink(MemoryTopic()))
    data = json.loads(_cli(*args))
    check = data["shape_check"]
    assert check["foreign_blocks"] > 0 and check["exposed"] and check["held_back"]
    named = {(e["period"], tuple(sorted(e["dimensions"]))) for e in check["exposed"]}
    assert all("sex" in dims for _, dims in named)  # the dimension dropped
    warnings = data["warnings"]
    assert warnings[0].startswith("WARNING: ") and "would expose" in warnings[0]
    first = check["exposed"][0]
    assert any(first["period"] in line and "interval" in line for line in warnings[1:])
    assert "publish holds back" in warnings[-1]
    assert "would expose" in _cli(*args[:-2])
    # publish under the new policy: the cells held back are not sent
    held = {(c["period"], tuple(sorted(c["dimensions"].items()))) for c in check["held_back"]}
    assert home.policy_path.resolve() != (GOLDEN_POLICIES / "PAN.yaml").resolve()
    home.policy_path.write_text(new.read_text(encoding="utf-8"), encoding="utf-8")
    with NodeStore(home.store_path) as store:
        stage_publication(home, store, home_policy(home))
        release = plan_flow_release(store, home_policy(home))
    sent = {(c.period, tuple(sorted(c.dimensions))) for c in release.cells}
    assert not held & sent
    # what was published under both shapes, read together by ``policy audit``
    with NodeStore(home.store_path) as store:
        drain_outbox(store, MemorySink(MemoryTopic()))
    result = CliRunner().invoke(
        main, ["--home", str(home.path), "policy", "audit", "--format", "json"]
    )
    data = json.loads(result.output)
    across = data["exchanges"][0]["across_shapes"]
    assert across is not None and across["foreign_blocks"] > 0 and across["hidden"] > 0
    assert across["passes"] and across["failing"] == [], across["failing"]
    assert result.exit_code == 0 and data["passes"], result.output
    assert "across shapes" in _cli("--home", str(home.path), "policy", "audit")
