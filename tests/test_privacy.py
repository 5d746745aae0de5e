"""Differential privacy for flow statistics (issue 16): calibrated intervals,
the budget ledger and its refusals, continual release that does not spend
again, the floor on noisy events, and the whole path on a real broker."""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import fastavro
import numpy as np
import pytest
import yaml

from node.aggregator.run import aggregate_once
from node.config import Home, policies_dir
from node.crypto.signing import SigningKey
from node.demo.synth import generate_encounters, write_csv
from node.home import event_codec, regional_floor
from node.member.event_factory import EventFactory
from node.member.flow_release import PublishPlan, prepare_flow_events
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.member.staging import privacy_budget
from node.model.codes import iso_week
from node.policy import dp_budget, dp_domain, dp_noise, privacy
from node.policy.dp_budget import PrivacyBudgetExceeded
from node.policy.flow_rules import FlowStatisticsRules
from node.policy.loader import load_floor, load_policy
from node.policy.release import release_flows
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.kafka_consumer import read_all
from tests.factories import START, aggregator_for

NATIONALITIES = ["HTI", "CHN", "CMR", "AFG", "AGO", "IND", "COD", "CUB"]
UTC_NOON = "T12:00:00+00:00"


def _rules(**privacy_kw: Any) -> FlowStatisticsRules:
    settings: dict[str, Any] = {
        "epsilon_per_release": 1.0,
        "budget": {"TS": 2.0},
        "revisions": 4,
        "domain": {"nationality": NATIONALITIES},
    } | privacy_kw
    return FlowStatisticsRules(
        shared=True,
        audiences=["TS"],
        purposes=["statistics"],
        dimensions=["nationality", "sex"],
        min_cell_size=5,
        method="differential_privacy",
        privacy=settings,
    )


def _seeded_noise(seed: int) -> dp_noise.NoiseSource:
    """Discrete Laplace written here, independently of the module: the
    difference of two geometric draws (P(X=k) proportional to exp(-|k|/scale))."""
    rng = np.random.default_rng(seed)

    def noise(values: list[int], scale: float) -> list[int]:
        p = 1.0 - math.exp(-1.0 / scale)
        a = rng.geometric(p, len(values)) - rng.geometric(p, len(values))
        return [int(v + d) for v, d in zip(values, a, strict=True)]

    return noise


def _rows(n: int, seed: int, weeks: int = 6) -> list[tuple[str, str, date, date, str | None]]:
    out = []
    for r in generate_encounters("PAN", n, seed=seed, start=START, weeks=weeks):
        out.append(
            (
                r["nationality"],
                r["sex"],
                date.fromisoformat(r["date_of_birth"]),
                date.fromisoformat(r["encounter_date"]),
                r["previous_country"] or None,
            )
        )
    return out


def _truth(rows: list[tuple[str, str, date, date, str | None]]) -> Counter[tuple[str, str, str]]:
    """(week, nationality or _O, sex) -> count, from the rows directly."""
    out: Counter[tuple[str, str, str]] = Counter()
    for nat, sex, _born, met, _prev in rows:
        out[(iso_week(met), nat if nat in NATIONALITIES else "_O", sex)] += 1
    return out


# -- the intervals ---------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 2.5, 4.0, 12.0])
def test_the_interval_is_the_calibrated_95_percent_one(scale: float) -> None:
    import opendp.prelude as dp

    h = dp_noise.half_width(1, scale)
    # OpenDP's own accuracy for one draw: P(|X| >= a) <= 0.05, so h = floor(a)
    assert h == math.floor(dp.discrete_laplacian_scale_to_accuracy(scale, 0.05))
    # the narrowest integer half-width that holds 95%, for sums of draws too
    for draws in (1, 2, 3):
        hw = dp_noise.half_width(draws, scale)
        q = math.exp(-1 / scale)
        xs = np.arange(-600, 601)
        one = (1 - q) / (1 + q) * q ** np.abs(xs)
        pmf = one
        for _ in range(draws - 1):
            pmf = np.convolve(pmf, one)
        mid = len(pmf) // 2
        assert pmf[mid - hw : mid + hw + 1].sum() >= 0.95
        assert pmf[mid - hw + 1 : mid + hw].sum() < 0.95
        # published intervals hold 95% even for a true 0 published because its
        # noise came out above 0: P(0 < X <= h) / P(X > 0) >= 0.95, narrowest such h
        hp = dp_noise.published_half_width(draws, scale)

        positive = pmf[mid + 1 :]
        assert positive[:hp].sum() / positive.sum() >= 0.95
        assert positive[: hp - 1].sum() / positive.sum() < 0.95


def test_noisy_values_stay_in_their_interval_in_95_percent_of_a_seeded_sample() -> None:
    rows = _rows(4000, seed=11, weeks=12)
    truth = _truth(rows)
    rules = _rules()
    inside = total = 0
    widths: Counter[int] = Counter()
    for seed in range(12):  # twelve independent releases of the same data
        release = privacy.release_private(rows, rules, {}, date(2024, 6, 1), _seeded_noise(seed))
        h = dp_noise.published_half_width(1, dp_noise.scale_for(rules))
        for cell in release.cells:
            dims = dict(cell.dimensions)
            true = truth[(cell.period, dims["nationality"], dims["sex"])]
            assert cell.true_count == true
            lo, hi = cell.ci95
            inside += lo <= true <= hi
            total += 1
            if lo > 0:
                widths[hi - lo] += 1
    assert total > 2000
    share = inside / total
    assert share >= 0.95, share
    # not trivially wide: every unclamped interval is exactly 2h wide, h the
    # calibrated half-width of scale levels * tables / epsilon = 3
    assert dp_noise.scale_for(rules) == 3.0
    assert set(widths) == {2 * h} and h == dp_noise.published_half_width(1, 3.0) == 9
    assert share < 0.995, share


def test_opendp_noise_has_the_distribution_the_interval_assumes() -> None:
    """The noise actually drawn (OpenDP) covers as often as the pmf says: the
    empirical share within h is within 5 standard errors of the exact one."""
    scale = 3.0
    h = dp_noise.half_width(1, scale)
    n = 40_000
    draws = dp_noise.opendp_noise([0] * n, scale)
    share = sum(abs(d) <= h for d in draws) / n
    exact = dp_noise.coverage(1, scale, h)
    assert abs(share - exact) < 5 * math.sqrt(exact * (1 - exact) / n), (share, exact)
    assert sum(abs(d) <= h - 1 for d in draws) / n < 0.95


def test_release_flows_dispatches_to_noise_and_publishes_no_negative_count() -> None:
    rows = _rows(300, seed=3)
    release = release_flows(rows, _rules(), privacy_states={}, today=date(2024, 3, 1))
    assert release.private is not None and release.cells
    assert all(c.ci95 is not None and c.noise_scale == 3.0 for c in release.cells)
    assert all(0 <= c.ci95[0] <= c.count <= c.ci95[1] for c in release.cells if c.ci95)
    assert release.summary()["suppressed_cells"] == 0
    assert release.summary()["noisy_cells"] == len(release.cells)


# -- continual release ------------------------------------------------------------


def test_prefix_nodes_cover_each_leaf_once() -> None:
    for t in range(1, 33):
        covered: list[int] = []
        for j, i in dp_noise.prefix_nodes(t):
            covered += list(range((i - 1) * 2**j + 1, i * 2**j + 1))
        assert covered == list(range(1, t + 1))


def test_a_revision_spends_nothing_again_and_unchanged_data_repeats_its_values() -> None:
    rules = _rules(epsilon_per_release=1.0, budget={"TS": 1.0}, revisions=4)
    rows = _rows(600, seed=5, weeks=2)
    first = privacy.release_private(rows[:400], rules, {}, date(2024, 1, 14))
    charged: dict[tuple[str, str], dict[str, float]] = {}
    for s in dp_budget.check_budget(rules, first.spends, charged):
        charged.setdefault((s.audience, s.period), {})[s.measurement] = s.epsilon
    assert dp_budget.spent_by_audience(charged) == {"TS": 1.0}  # the whole budget
    states = dict(first.states)
    # the same day again: no new leaf, no new noise, the same values
    again = privacy.release_private(rows[:400], rules, states, date(2024, 1, 14))
    assert not again.states or all(
        json.loads(again.states[p])["nodes"] == json.loads(states[p])["nodes"] for p in again.states
    )
    assert [(c.period, c.dimensions, c.count) for c in again.cells] == [
        (c.period, c.dimensions, c.count) for c in first.cells
    ]
    # a week later, with late records: a new leaf per period, revised values,
    # and nothing more spent (the budget is already full, and this passes)
    later = privacy.release_private(rows, rules, states, date(2024, 1, 21))
    assert dp_budget.check_budget(rules, later.spends, charged) == []
    assert all(len(json.loads(s)["ages"]) == 2 for s in later.states.values())
    assert {c.true_count for c in later.cells} != {c.true_count for c in first.cells}


def test_a_frozen_period_keeps_its_values() -> None:
    rules = _rules(revisions=2)
    rows = _rows(300, seed=9, weeks=1)
    states: dict[str, str] = {}
    for week in range(4):
        out = privacy.release_private(rows, rules, states, date(2024, 1, 7) + timedelta(weeks=week))
        states |= out.states
    assert out.frozen == 1 and all(len(json.loads(s)["ages"]) == 2 for s in states.values())


# -- the budget ---------------------------------------------------------------------


#: PAN's three tables (national total, per nationality, detail) on the DP
#: policy's dimensions: each record is in one cell of each.
DP_TABLES: list[list[str]] = [[], ["nationality"], ["nationality", "sex"]]


def _dp_policy(
    base: Path,
    *,
    epsilon: float = 1.0,
    budget: float = 2.0,
    tables: list[list[str]] | None = DP_TABLES,
) -> Path:
    data = yaml.safe_load((policies_dir() / "PAN.yaml").read_text(encoding="utf-8"))
    flows = data["exchanges"]["flow_statistics"]
    flows.update(
        {
            "dimensions": ["nationality", "sex"],
            "tables": tables,
            "audiences": ["TS"],
            "coarsen": [],
            "margins": [],
            "method": "differential_privacy",
            "privacy": {
                "epsilon_per_release": epsilon,
                "budget": {"TS": budget},
                "revisions": 4,
                "domain": {"nationality": NATIONALITIES},
            },
        }
    )
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"PAN-dp-{epsilon}-{budget}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _member(
    tmp_path: Path, policy: Path, n: int, *, topic: str = "t"
) -> tuple[Home, list[dict[str, str]]]:
    home = init_member(tmp_path / "pan", "PAN", policy=policy, topic=topic)
    rows = generate_encounters("PAN", n, seed=7, start=START, weeks=6)
    csv = tmp_path / "pan.csv"
    write_csv(rows, csv)
    assert ingest(home, csv, stage=False).stored == n  # staged below, on a chosen day
    return home, rows


def _stage(home: Home, day: date, policy: Path | None = None) -> PublishPlan:
    pol = load_policy(policy or home.policy_path, regional_floor())
    with NodeStore(home.store_path) as store:
        key = SigningKey.load(home.country, home.signing_key_path)
        factory = EventFactory(home.country, pol, key, event_codec())
        now = datetime.fromisoformat(day.isoformat() + UTC_NOON)
        plan = prepare_flow_events(store, factory, now=now)
        store.stage(plan.events, plan.suppression, plan.privacy)
        return plan


def test_the_ledger_is_kept_in_node_db_and_an_overspend_is_refused(tmp_path: Path) -> None:
    policy = _dp_policy(tmp_path, epsilon=1.0, budget=1.5)
    home, _ = _member(tmp_path, policy, 400)
    plan = _stage(home, date(2024, 2, 20))
    assert plan.events and plan.privacy is not None and plan.privacy.spends
    with NodeStore(home.store_path) as store:
        charged = store.privacy_charged(dp_budget.EXCHANGE)
        pending = store.outbox_status().pending
        states = store.privacy_states(dp_budget.EXCHANGE)
    assert dp_budget.spent_by_audience(charged) == {"TS": 1.0}
    assert len(states) == 6 and all(len(v) == 1 for v in charged.values())
    # a policy that measures the same periods again (another epsilon) would
    # spend 1.0 + 0.9 on each of them, past the budget of 1.5: refused
    other = _dp_policy(tmp_path / "v2", epsilon=0.9, budget=1.5)
    with pytest.raises(PrivacyBudgetExceeded) as info:
        _stage(home, date(2024, 2, 21), other)
    message = str(info.value)
    assert "flow_statistics" in message and "'TS'" in message
    assert "spent 1 of 1.5, remaining 0.5" in message and "epsilon 0.9" in message
    assert re.search(r"period 2024-W\d\d", message)
    with NodeStore(home.store_path) as store:  # nothing staged, nothing spent
        assert store.privacy_charged(dp_budget.EXCHANGE) == charged
        assert store.outbox_status().pending == pending
        assert store.privacy_states(dp_budget.EXCHANGE) == states


def test_the_same_policy_publishing_again_spends_nothing(tmp_path: Path) -> None:
    policy = _dp_policy(tmp_path, epsilon=1.0, budget=1.0)
    home, _ = _member(tmp_path, policy, 400)
    _stage(home, date(2024, 2, 20))
    second = _stage(home, date(2024, 2, 20))
    assert second.events == [] and second.privacy is not None and not second.privacy.spends
    third = _stage(home, date(2024, 2, 27))  # a week older: revisions, still nothing spent
    assert third.privacy is not None and not third.privacy.spends
    with NodeStore(home.store_path) as store:
        assert dp_budget.spent_by_audience(store.privacy_charged(dp_budget.EXCHANGE)) == {"TS": 1.0}


def test_the_floor_caps_epsilon_and_budgets(tmp_path: Path) -> None:
    floor = regional_floor()
    assert floor.differential_privacy is not None
    too_much = _dp_policy(tmp_path, epsilon=1.0, budget=9.0)
    problems = floor.problems(load_policy(too_much))
    assert any(k == "exchanges.flow_statistics.privacy.budget.TS" for k, _ in problems)
    hot = _dp_policy(tmp_path, epsilon=3.0, budget=3.0)
    problems = floor.problems(load_policy(hot))
    assert any(k.endswith("epsilon_per_release") for k, _ in problems)
    assert floor.problems(load_policy(_dp_policy(tmp_path))) == []


def test_the_aggregator_floor_judges_noisy_cells_on_their_noise() -> None:
    floor = load_floor(policies_dir() / "regional.yaml")
    base = {"count": 1, "obs_status": "N", "ci95_low": 0, "ci95_high": 10}
    good = base | {"epsilon": 1.0, "noise_scale": 3.0}

    def problem(body: dict[str, Any]) -> str | None:
        return floor.event_problem("FlowStatistic", ("TS",), ("statistics",), 30, body)

    assert problem(good) is None  # a noisy 1: judged on its budget, not min_cell_size
    assert problem({"count": 1, "obs_status": "A"}) is not None  # an exact 1 is not
    assert "interval" in (problem(good | {"ci95_high": None}) or "")
    assert "epsilon" in (problem(good | {"epsilon": 5.0}) or "")
    assert "scale" in (problem(good | {"noise_scale": 0.5}) or "")
    assert "outside" in (problem(good | {"count": 11}) or "")


def test_a_suppression_policy_keeps_its_hash_and_bodies() -> None:
    policy = load_policy(policies_dir() / "PAN.yaml")
    assert "privacy" not in policy.canonical_json() and "method" not in policy.canonical_json()


# -- end to end ------------------------------------------------------------------------


def _body_decoder() -> Any:
    """FlowStatistic v2 read from the schema file, by fastavro directly."""
    raw = json.loads(Path("schemas/FlowStatistic.v2.avsc").read_text(encoding="utf-8"))
    return fastavro.parse_schema(raw)


def test_a_dp_policy_end_to_end_on_a_real_broker(
    tmp_path: Path, kafka_bootstrap: str, topic: str, group_id: str
) -> None:
    policy = _dp_policy(tmp_path)
    home, rows = _member(tmp_path, policy, 500, topic=topic)
    home.config.kafka.bootstrap = kafka_bootstrap
    home.save()
    agg = aggregator_for(tmp_path, [home], topic=topic)
    agg.config.kafka.bootstrap = kafka_bootstrap
    agg.config.kafka.group_id = group_id
    agg.save()
    result = publish(home)  # the real path: plan, budget, stage, drain
    assert result.drain.acknowledged > 0 and result.plan.privacy is not None
    assert result.plan.privacy.spends and result.plan.suppressed_cells == 0
    assert privacy_budget(home) == {"TS": {"spent": 1.0, "budget": 2.0, "remaining": 1.0}}

    # the topic, read by a decoder of our own: every flow body is noisy, with
    # its calibrated interval; no exact count of any size is there. The three
    # tables put each record in three cells: scale levels(4) * 3 / epsilon = 9
    codec = event_codec()
    schema = _body_decoder()
    h = dp_noise.published_half_width(1, 9.0)
    bodies: list[dict[str, Any]] = []
    raw_values = {r[k] for r in rows for k in ("family_name", "document_number")}
    for message in read_all(kafka_bootstrap, topic):
        assert message.value is not None
        assert not any(v.encode("utf-8") in message.value for v in raw_values)
        env = codec.decode_envelope(codec.split_signed(message.value)[0])
        if env.kind != "FlowStatistic" or env.body is None:
            continue
        body = fastavro.schemaless_reader(io.BytesIO(env.body[10:]), schema, schema)
        bodies.append(cast(dict[str, Any], body))  # the schema is a record
    assert bodies and all(b["obs_status"] == "N" for b in bodies)
    assert all(b["ci95_high"] - b["ci95_low"] == 2 * h for b in bodies if b["ci95_low"] > 0)
    assert all(b["epsilon"] == 1.0 and b["noise_mechanism"] == "discrete_laplace" for b in bodies)
    assert all(b["noise_scale"] == 9.0 for b in bodies)
    # the tables' cells carry _T where they sum, as under suppression; the
    # dimensions the policy does not publish stay null
    assert all(b["age_band"] is None and b["previous_country"] is None for b in bodies)
    weeks = {iso_week(date.fromisoformat(r["encounter_date"])) for r in rows}
    shapes = Counter((b["nationality"] == "_T", b["sex"] == "_T") for b in bodies)
    assert shapes[(True, False)] == 0  # no table keeps sex without nationality
    assert shapes[(True, True)] == len(weeks)  # a national total per week, never a noisy 0
    assert shapes[(False, True)] > 0 and shapes[(False, False)] > 0
    # and the values are noisy: few equal the true count (P(noise = 0) is 0.06
    # at scale 9), where an exact release would match every one
    truth: Counter[tuple[str, str, str]] = Counter()
    for r in rows:
        week = iso_week(date.fromisoformat(r["encounter_date"]))
        nat = r["nationality"] if r["nationality"] in NATIONALITIES else "_O"
        for key in ((nat, r["sex"]), (nat, "_T"), ("_T", "_T")):
            truth[(week, *key)] += 1
    same = sum(b["count"] == truth[(b["period"], b["nationality"], b["sex"])] for b in bodies)
    assert same < 0.4 * len(bodies), (same, len(bodies))
    inside = sum(
        b["ci95_low"] <= truth[(b["period"], b["nationality"], b["sex"])] <= b["ci95_high"]
        for b in bodies
    )
    assert inside >= 0.85 * len(bodies), (inside, len(bodies))

    stats = aggregate_once(agg)
    assert stats.rejected_total == 0 and stats.applied >= len(bodies)
    with PictureStore(agg.store_path) as store:
        cells = [c for c in store.flow_cells() if c["obs_status"] == "N"]
    assert len(cells) == len(bodies)
    assert all(c["ci95_low"] <= c["count"] <= c["ci95_high"] for c in cells)
    small = [c for c in cells if c["count"] < 5]
    assert small  # noisy small numbers reach the picture, each with its interval
    assert all(c["ci95_low"] is not None for c in small)


def test_tables_measure_their_totals_and_split_the_epsilon() -> None:
    """With the issue-16 tables (national total, per nationality, detail) each
    record is in three cells: the scale triples, the tree still costs epsilon,
    and the `_T` total is published with an interval that holds the truth."""
    rules = FlowStatisticsRules(**(_rules().model_dump() | {"tables": DP_TABLES}))
    assert dp_noise.scale_for(rules) == 9.0 and dp_noise.epsilon_of(rules) == pytest.approx(1.0)
    rows = _rows(2000, seed=21, weeks=4)
    truth = Counter(iso_week(r[3]) for r in rows)
    inside = 0
    for seed in range(150):  # seeded: the outcome is fixed
        out = privacy.release_private(rows, rules, {}, date(2024, 3, 1), _seeded_noise(seed))
        totals = {
            c.period: c
            for c in out.cells
            if dict(c.dimensions) == {"nationality": "_T", "sex": "_T"}
        }
        for week, n in truth.items():
            cell = totals[week]  # a total of hundreds is never a noisy 0
            assert cell.true_count == n
            inside += cell.ci95[0] <= n <= cell.ci95[1]
    assert inside >= 0.94 * 150 * len(truth)


def test_a_picture_made_before_v2_gains_the_interval_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "picture.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE flow_cell (subject TEXT PRIMARY KEY, reporting_country TEXT NOT NULL, "
        "period TEXT NOT NULL, period_type TEXT NOT NULL, nationality TEXT, "
        "nationality_region TEXT, sex TEXT, age_band TEXT, previous_country TEXT, "
        "count INTEGER, obs_status TEXT, revision INTEGER NOT NULL, event_id TEXT NOT NULL)"
    )
    conn.commit()
    conn.close()
    body = {"period": "2024-W02", "period_type": "ISO_WEEK", "nationality": "CUB"}
    with PictureStore(path) as store, store.transaction() as tx:
        store.upsert_flow(
            tx,
            "s1",
            1,
            "e1",
            "PAN",
            body | {"count": 2, "obs_status": "N", "ci95_low": 0, "ci95_high": 11},
        )
        store.upsert_flow(tx, "s2", 1, "e2", "PAN", body | {"count": 40, "obs_status": "A"})
    with PictureStore(path) as store:
        cells = {c["subject"]: c for c in store.flow_cells()}
    assert (cells["s1"]["ci95_low"], cells["s1"]["ci95_high"]) == (0, 11)
    assert cells["s2"]["ci95_low"] is None and cells["s2"]["obs_status"] == "A"


def test_weeks_and_months_overlap_so_their_losses_add() -> None:
    """A policy that moves from weekly to monthly periods measures every record
    again: the month's spend adds to the weeks' (periods of one type are
    disjoint, of two types not), and a budget of 1.5 refuses the second 1.0."""
    weekly = _rules(budget={"TS": 1.5})
    monthly = FlowStatisticsRules(**(weekly.model_dump() | {"period": "month"}))
    rows = _rows(200, seed=4, weeks=2)
    first = privacy.release_private(rows, weekly, {}, date(2024, 1, 20))
    charged: dict[tuple[str, str], dict[str, float]] = {}
    for s in dp_budget.check_budget(weekly, first.spends, charged):
        charged.setdefault((s.audience, s.period), {})[s.measurement] = s.epsilon
    assert dp_budget.spent_by_audience(charged) == {"TS": 1.0}
    second = privacy.release_private(rows, monthly, first.states, date(2024, 1, 20))
    assert {s.period for s in second.spends} == {"2024-01"}
    with pytest.raises(PrivacyBudgetExceeded, match=r"period 2024-01: .* spent 1 of 1.5"):
        dp_budget.check_budget(monthly, second.spends, charged)


def test_the_codec_reads_flow_statistics_v1_and_v2_both_ways() -> None:
    from node.codec.single_object import decode

    new = event_codec()
    old = type(new)(new.registry, pins={"FlowStatistic": 1})
    exact = {
        "reporting_country": "PAN",
        "period": "2024-W02",
        "period_type": "ISO_WEEK",
        "nationality": "CUB",
        "count": 12,
        "obs_status": "A",
    }
    noisy = exact | {
        "count": 3,
        "obs_status": "N",
        "ci95_low": 0,
        "ci95_high": 12,
        "noise_mechanism": "discrete_laplace",
        "noise_scale": 3.0,
        "epsilon": 1.0,
    }
    # a v1 writer (a node not yet upgraded), read by the v2 reader: no interval
    writer, body = decode(
        old.encode_body("FlowStatistic", exact), new.registry, new.schema("FlowStatistic")
    )
    assert writer.version == 1 and body["ci95_low"] is None and body["count"] == 12
    # a v2 noisy cell read by a v2 reader keeps everything
    writer, body = decode(
        new.encode_body("FlowStatistic", noisy), new.registry, new.schema("FlowStatistic")
    )
    assert writer.version == 2 and body == noisy | {
        "age_band": None,
        "sex": None,
        "previous_country": None,
        "nationality_region": None,
    }
    # and a v1 reader (an aggregator not yet upgraded) reads it without the
    # interval: its floor then sets a noisy cell aside rather than show it exact
    _, body = decode(
        new.encode_body("FlowStatistic", noisy), new.registry, old.schema("FlowStatistic")
    )
    assert "ci95_low" not in body and body["obs_status"] == "N"
    assert load_floor(policies_dir() / "regional.yaml").event_problem(
        "FlowStatistic", ("TS",), ("statistics",), 30, body
    )


def test_the_release_schedule_does_not_depend_on_late_records() -> None:
    """Two data sets that differ by one late record get revisions of the same
    periods at the same releases: whether a revision happens tells nothing."""
    rules = _rules()
    rows = _rows(300, seed=8, weeks=3)
    late = (*rows[0][:3], rows[0][3], rows[0][4])
    schedules = []
    for data in (rows, [*rows, late]):
        states: dict[str, str] = {}
        seen = []
        for day in (date(2024, 1, 21), date(2024, 1, 23), date(2024, 1, 28)):
            out = privacy.release_private(data if day.day > 21 else rows, rules, states, day)
            states |= out.states
            seen.append({p: json.loads(s)["ages"] for p, s in states.items()})
        schedules.append(seen)
    assert schedules[0] == schedules[1]


def test_publish_refuses_an_overspend_on_the_broker_and_sends_nothing(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    from click.testing import CliRunner

    from node.cli import main

    home, _ = _member(tmp_path, _dp_policy(tmp_path, epsilon=1.0, budget=1.5), 300, topic=topic)
    home.config.kafka.bootstrap = kafka_bootstrap
    home.save()
    runner = CliRunner()
    first = runner.invoke(main, ["--home", str(home.path), "publish", "--format", "json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output)
    assert summary["privacy"] == {"TS": {"spent": 1.0, "budget": 1.5, "remaining": 0.5}}
    on_topic = len(read_all(kafka_bootstrap, topic))
    assert on_topic == summary["acknowledged"] > 0
    # the operator edits the policy: every period released would be measured again
    home.config.policy = str(_dp_policy(tmp_path / "v2", epsilon=0.9, budget=1.5))
    home.save()
    second = runner.invoke(main, ["--home", str(home.path), "publish", "--format", "json"])
    assert second.exit_code == 1
    assert "flow_statistics to audience 'TS'" in second.output
    assert "spent 1 of 1.5, remaining 0.5" in second.output
    assert len(read_all(kafka_bootstrap, topic)) == on_topic
    with NodeStore(home.store_path) as store:
        assert store.outbox_status().pending == 0
        assert dp_budget.spent_by_audience(store.privacy_charged(dp_budget.EXCHANGE)) == {"TS": 1.0}


# -- tables: the same field and semantics as suppression ------------------------------


def test_a_dp_table_by_region_of_nationality_counts_each_record_once_per_table() -> None:
    """A table may keep the region of the nationality dimension, as under
    suppression: its cells name nationality_region (nationality absent), carry
    _T where they sum, are flagged as table cells, and count what an
    independent tally by region counts."""
    from node.model.codes import SEXES, SUBREGION

    tables = [[], ["nationality_region"], ["nationality", "sex"]]
    rules = FlowStatisticsRules(**(_rules().model_dump() | {"tables": tables}))
    assert dp_noise.scale_for(rules) == 9.0 and dp_noise.epsilon_of(rules) == pytest.approx(1.0)
    rows = _rows(1500, seed=31, weeks=3)
    out = privacy.release_private(rows, rules, {}, date(2024, 2, 1), _seeded_noise(5))
    tally: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    for nat, sex, _born, met, _prev in rows:
        week = iso_week(met)
        tally[(week, (("nationality", nat if nat in NATIONALITIES else "_O"), ("sex", sex)))] += 1
        tally[(week, (("nationality_region", SUBREGION[nat]), ("sex", "_T")))] += 1
        tally[(week, (("nationality", "_T"), ("sex", "_T")))] += 1
    regions = [c for c in out.cells if dict(c.dimensions).get("nationality_region")]
    assert regions and all(c.table for c in regions)
    assert all("nationality" not in dict(c.dimensions) for c in regions)
    assert all(not c.table for c in out.cells if "_T" not in dict(c.dimensions).values())
    for c in out.cells:
        assert c.true_count == tally[(c.period, c.dimensions)], c
    # every region of the code list is a cell of the domain, published or a noisy 0
    per_week = 1 + (len(set(SUBREGION.values())) + 1) + (len(NATIONALITIES) + 1) * len(SEXES)
    assert out.domain_cells == len({c.period for c in out.cells}) * per_week


def test_dp_tables_are_checked_as_suppression_tables_are() -> None:
    base = _rules().model_dump()
    with pytest.raises(ValueError, match=r"tables\[1\]: \['age_band'\] not among the dimensions"):
        FlowStatisticsRules(**(base | {"tables": [[], ["age_band"], ["nationality", "sex"]]}))
    with pytest.raises(ValueError, match="list the detail"):
        FlowStatisticsRules(**(base | {"tables": [[], ["nationality"]]}))
    # nothing is suppressed under noise: tables need no complementary suppression
    rules = FlowStatisticsRules(**(base | {"tables": DP_TABLES, "secondary_suppression": "none"}))
    assert dp_domain.tables_of(rules) == [("nationality", "sex"), (), ("nationality",)]
    # the order a policy lists its tables in measures the same thing: the same
    # shape (no new measurement, nothing charged again), the same cells
    again = FlowStatisticsRules(
        **(base | {"tables": [["sex", "nationality"], ["nationality"], []]})
    )
    assert privacy.shape_of(again) == privacy.shape_of(rules)
    assert privacy.shape_of(rules) != privacy.shape_of(_rules())
    assert dp_domain.cell_keys(again) == dp_domain.cell_keys(rules)


def test_preview_of_a_dp_policy_reports_no_exact_coverage(tmp_path: Path) -> None:
    """preview runs the noisy release: no number it would publish is exact, so
    coverage is 0 of every view (not None, not the share the cells reach), and
    the table cells are counted apart (it crashed on the summary before)."""
    from node.member.preview import preview

    home, rows = _member(tmp_path, _dp_policy(tmp_path), 300)
    flows = next(e for e in preview(home)["exchanges"] if e["kind"] == "FlowStatistic")
    assert flows["coverage"] == {"total": 0.0, "nationality": 0.0, "detail": 0.0}
    assert flows["suppressed_cells"] == 0 and flows["tables"] == DP_TABLES
    assert 0 < flows["table_cells"] < flows["published_cells"]
    # the finest cells are the detail's domain, 9 nationalities x 3 sexes a week;
    # a sum of noisy counts is no number of encounters
    weeks = len({iso_week(date.fromisoformat(r["encounter_date"])) for r in rows})
    assert flows["cells"] == weeks * (len(NATIONALITIES) + 1) * 3
    assert flows["published_total"] is None
    from click.testing import CliRunner

    from node.cli import main

    shown = CliRunner().invoke(main, ["--home", str(home.path), "preview"])
    assert shown.exit_code == 0, shown.output
    assert "coverage (exact)  total 0.0%, nationality 0.0%, detail 0.0%" in shown.output
    assert "every count noisy: no exact total" in shown.output
    assert flows["events"] == flows["published_cells"]
    # nothing was spent or stored by looking
    with NodeStore(home.store_path) as store:
        assert store.privacy_charged(dp_budget.EXCHANGE) == {}
        assert store.privacy_states(dp_budget.EXCHANGE) == {}


def test_coverage_of_a_noisy_release_is_zero_or_none() -> None:
    from node.policy.release import coverage

    rules = FlowStatisticsRules(**(_rules().model_dump() | {"tables": DP_TABLES}))
    release = release_flows(_rows(200, seed=2), rules, privacy_states={}, today=date(2024, 3, 1))
    assert release.cells and coverage(release, rules) == {
        "total": 0.0,
        "nationality": 0.0,
        "detail": 0.0,
    }
    by_sex = _rules().model_dump()
    by_sex["dimensions"] = ["sex"]
    by_sex["privacy"]["domain"] = {}
    detail_only = FlowStatisticsRules(**by_sex)
    empty = release_flows([], detail_only, privacy_states={}, today=date(2024, 3, 1))
    assert coverage(empty, detail_only) == {"total": None, "nationality": None, "detail": None}
    some = release_flows(_rows(50, seed=2), detail_only, privacy_states={}, today=date(2024, 3, 1))
    assert coverage(some, detail_only) == {"total": 0.0, "nationality": None, "detail": 0.0}
