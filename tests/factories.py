"""Builders shared by the tests: member and aggregator homes with seeded data."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from node.aggregator.setup import add_member, init_aggregator
from node.config import Home, policies_dir
from node.crypto.signing import SigningKey
from node.demo.synth import generate_encounters, write_csv
from node.federation import trust
from node.home import event_codec
from node.member.drain import drain_outbox
from node.member.event_factory import EventFactory
from node.member.flow_release import prepare_flow_events
from node.member.intake import ingest
from node.member.member_home import home_policy, init_member
from node.policy.loader import load_policy
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySink, MemoryTopic

START = date(2024, 1, 1)


def records_only_policy(base: Path, country: str = "USA", k_anonymity: int | None = 1) -> Path:
    """The country's shipped policy with TS taken off the flows' audiences, so
    that encounter records to TS all leave (but for k): with TS reading the
    flows too, the records of flow cells not published alone stay home
    (tests/test_sdc_records.py). For tests about the records' pipeline, so k
    is 1 unless asked (None: the default, the minimum cell size; k has its
    own tests in tests/test_records_k_anonymity.py)."""
    import yaml

    data = yaml.safe_load((policies_dir() / f"{country}.yaml").read_text(encoding="utf-8"))
    data["exchanges"]["flow_statistics"]["audiences"] = ["members", "UNHCR"]
    if k_anonymity is not None:
        data["exchanges"]["encounter_records"]["k_anonymity"] = k_anonymity
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{country}-records-only.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def detail_policy(base: Path, country: str) -> Path:
    """The country's shipped policy publishing only its detail cells, each small
    one suppressed: no tables, no coarsening, no margins, no complementary
    suppression. For tests of delivery (exactly once, faults, security,
    rebuilds) that check the picture against ``expected_picture``, an
    expectation written independently of node.policy; what the shipped policies
    release (tables, linked protection) has its own tests (test_flow_tables_kafka,
    test_picture_coverage_kafka, test_sdc_*)."""
    import yaml

    data = yaml.safe_load((policies_dir() / f"{country}.yaml").read_text(encoding="utf-8"))
    flows = data["exchanges"]["flow_statistics"]
    for key in ("tables", "protection"):
        flows.pop(key, None)
    flows.update(coarsen=[], margins=[], secondary_suppression="none", rounding=1)
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{country}-detail.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def member_with_data(
    base: Path,
    country: str,
    n: int,
    *,
    seed: int = 7,
    weeks: int = 6,
    topic: str = "t",
    detail_only: bool = False,
) -> tuple[Home, list[dict[str, str]], Path]:
    """A member home with n synthetic records ingested; returns (home, rows, csv).
    ``detail_only``: under ``detail_policy`` instead of the shipped policy."""
    policy = detail_policy(base / "policies", country) if detail_only else None
    home = init_member(base / country.lower(), country, topic=topic, policy=policy)
    rows = generate_encounters(country, n, seed=seed, start=START, weeks=weeks)
    path = base / f"{country}.csv"
    write_csv(rows, path)
    report = ingest(home, path)
    assert report.stored == n, report.rejected[:3]
    return home, rows, path


def aggregator_for(base: Path, members: list[Home], *, topic: str = "t") -> Home:
    agg = init_aggregator(base / "ts", topic=topic)
    # A group of its own (under the Secretariat's prefix): tests sharing one
    # group would each rebalance the others' members, and wait on them.
    agg.config.kafka.group_id = f"{agg.config.kafka.group_id}.{uuid.uuid4().hex[:12]}"
    agg.save()
    secretariat = agg.secretariat_pub_path.read_text(encoding="ascii")
    for m in members:
        add_member(agg, m.country, m.public_key_path, m.encryption_pub_path)
        trust.pin_secretariat(m, secretariat)
    return agg


def _age(born: date, on: date) -> int:
    """Whole years on ``on``, worked out here rather than with the node's age_at."""
    had_birthday = (on.month, on.day) >= (born.month, born.day)
    return on.year - born.year - (0 if had_birthday else 1)


def _band(age: int) -> str:
    """The regional age bands, as the policies document them (not node.model.codes)."""
    for label, top in (("0-17", 17), ("18-29", 29), ("30-44", 44), ("45-59", 59)):
        if age <= top:
            return label
    return "60+"


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def expected_flow_totals(country: str, rows: list[dict[str, str]]) -> Counter[tuple[str, str]]:
    """(ISO week, nationality) -> count, straight from raw rows, applying the
    rule of the country's ``detail_policy`` (weekly cells by its dimensions,
    cells under the minimum suppressed). Written independently of the engine
    (node.policy.atoms, node.policy.block)."""
    policy = load_policy(policies_dir() / f"{country}.yaml")
    rules = policy.exchanges.flow_statistics
    assert rules.period == "iso_week"
    cells: Counter[tuple[str, ...]] = Counter()
    for r in rows:
        born = date.fromisoformat(r["date_of_birth"])
        met = date.fromisoformat(r["encounter_date"])
        values = {
            "nationality": r["nationality"],
            "sex": r["sex"],
            "age_band": _band(_age(born, met)),
            "previous_country": r["previous_country"] or "_U",
        }
        cells[(_week(met), *(values[d] for d in rules.dimensions))] += 1
    totals: Counter[tuple[str, str]] = Counter()
    nat = list(rules.dimensions).index("nationality") + 1
    for key, n in cells.items():
        if n >= rules.min_cell_size:
            totals[(key[0], key[nat])] += n
    return totals


def picture_totals(agg: Home) -> Counter[tuple[str, str, str]]:
    """(period, reporting country, nationality) -> count in the aggregator's picture."""
    out: Counter[tuple[str, str, str]] = Counter()
    with PictureStore(agg.store_path) as store:
        for r in store.flow_cells():
            if "_T" in r.values():
                continue  # a table's total: the sum is of the detail cells
            # cells coarsened to their region have no nationality: they share ""
            out[(r["period"], r["reporting_country"], r["nationality"] or "")] += r["count"]
    return out


def expected_picture(
    rows_by_country: Iterable[tuple[str, list[dict[str, str]]]],
) -> Counter[tuple[str, str, str]]:
    """The picture straight from the raw rows, for data ingested in one release."""
    out: Counter[tuple[str, str, str]] = Counter()
    for country, rows in rows_by_country:
        for (period, nat), n in expected_flow_totals(country, rows).items():
            out[(period, country, nat)] = n
    return out


def publish_flows_to(home: Home, topic: MemoryTopic, batch_size: int = 5_000) -> int:
    """Stage the home's flow statistics and drain them into an in-memory topic."""
    policy = home_policy(home)
    with NodeStore(home.store_path) as store:
        key = SigningKey.load(home.country, home.signing_key_path)
        factory = EventFactory(home.country, policy, key, event_codec())
        plan = prepare_flow_events(store, factory)
        store.stage(plan.events)
        return drain_outbox(store, MemorySink(topic), batch_size=batch_size).acknowledged
