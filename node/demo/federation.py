"""``corredor demo``: a whole federation on a local broker, start to finish.

Four member nodes along the corridor (Panama, Costa Rica, Guatemala, Mexico)
and the Secretariat's aggregator, each in its own home under one directory.
Each member ingests seeded synthetic raw records, publishes what its policy
lets out, and the aggregator builds the regional picture.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from node.aggregator.run import aggregate_once
from node.aggregator.setup import add_member, init_aggregator
from node.aggregator.stats import ApplyStats
from node.config import Home
from node.demo.synth import generate_encounters, write_csv
from node.errors import ConfigError
from node.federation import drafts
from node.federation.control import publish_manifest, sync_manifest
from node.member import corrections
from node.member.inbox import read_inbox
from node.member.intake import ingest
from node.member.member_home import init_member
from node.member.publish import publish
from node.topics import DEMO_TOPIC_PREFIX

DEMO_COUNTRIES: tuple[str, ...] = ("PAN", "CRI", "GTM", "MEX")
#: Records per country over the demo's twelve weeks. Panama's Darién crossing is
#: the largest flow (it passed 10,000 people a week at its 2023 peaks); counts
#: thin out northwards where people travel faster and are met less often.
DEMO_VOLUMES: dict[str, int] = {"PAN": 24000, "CRI": 18000, "GTM": 9000, "MEX": 12000}
DEMO_START = date(2024, 1, 1)
DEMO_WEEKS = 12
MARKER = ".corredor-demo"
#: Illustrative reference data (see samples/README.md): not official texts.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
_SAMPLE_SUFFIXES = (".csv", ".json", ".jsonl")
#: What the demo corrects and withdraws after the first publication.
DEMO_REVISIONS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    (
        "PAN",
        "ConsularMission|PAN|PAN-CM-IND-01",
        "correct",
        {"phone": "+507 200-0199", "notes": "New switchboard number from 2026."},
    ),
    ("MEX", "HealthAdvisory|MEX|MEX-HA-2026-002", "withdraw", {}),
)


def _share_manifest(agg: Home, members: list[Home], topic: str) -> None:
    """Sign the manifest with this run's control and picture topics and give it
    to every member: it carries the encryption keys restricted intelligence is
    sealed to."""
    control = f"{topic}.control"
    for home in (agg, *members):
        home.config.kafka.control_topic = control
        home.save()
    draft = drafts.load_draft(agg)
    topics = draft.topics.model_copy(update={"control": control, "picture": f"{topic}.picture"})
    drafts.save_draft(agg, draft.model_copy(update={"topics": topics}))
    drafts.sign_draft(agg)
    publish_manifest(agg)
    for home in members:
        sync_manifest(home)


def sample_files(country: str) -> list[Path]:
    """The demo's illustrative reference files for a country, if it has any."""
    directory = SAMPLES_DIR / country.lower()
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in _SAMPLE_SUFFIXES)


@dataclass
class DemoResult:
    directory: Path
    topic: str
    bootstrap: str
    members: dict[str, Home] = field(default_factory=dict)
    aggregator: Home | None = None
    records: dict[str, int] = field(default_factory=dict)
    rejected_rows: dict[str, int] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)
    stats: ApplyStats | None = None
    #: Per country: flow cells published, and reference events by kind.
    cells: dict[str, int] = field(default_factory=dict)
    reference: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The correction and withdrawal the demo makes, as (country, subject, action).
    revisions: list[tuple[str, str, str]] = field(default_factory=list)
    #: Restricted intelligence each member could open from its inbox, by producer.
    inbox: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The Secretariat's HTML report of the picture, in the demo directory.
    report: Path | None = None


def _reset(directory: Path) -> None:
    """Clear a previous demo's homes, and nothing that is not one."""
    if directory.exists():
        if not (directory / MARKER).exists() and any(directory.iterdir()):
            raise ConfigError(
                f"{directory} exists and is not a Corredor demo directory; choose another --dir"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("homes created by `corredor demo`; safe to delete\n")


def run_demo(
    directory: Path,
    bootstrap: str,
    *,
    countries: tuple[str, ...] = DEMO_COUNTRIES,
    seed: int = 2016,
    scale: float = 1.0,
    console: Console | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo federation against ``bootstrap``; see the module docstring."""
    console = console or Console()
    _reset(directory)
    topic = f"{DEMO_TOPIC_PREFIX}{int(time.time())}"
    result = DemoResult(directory, topic, bootstrap)
    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        setup = progress.add_task("Creating homes and keys", total=len(countries) + 1)
        agg = init_aggregator(directory / "secretariat", bootstrap=bootstrap, topic=topic)
        result.aggregator = agg
        progress.advance(setup)
        secretariat = agg.secretariat_pub_path.read_text(encoding="ascii")
        for country in countries:
            home = init_member(
                directory / country.lower(),
                country,
                bootstrap=bootstrap,
                topic=topic,
                secretariat_pem=secretariat,
            )
            add_member(agg, country, home.public_key_path, home.encryption_pub_path)
            result.members[country] = home
            progress.advance(setup)
        _share_manifest(agg, list(result.members.values()), topic)

        data_dir = directory / "raw-data"
        data_dir.mkdir()
        volumes = {c: max(50, int(DEMO_VOLUMES.get(c, 1500) * scale)) for c in countries}
        gen = progress.add_task("Generating synthetic raw records", total=sum(volumes.values()))
        files: dict[str, Path] = {}
        for i, country in enumerate(countries):
            rows = generate_encounters(
                country, volumes[country], seed=seed + i, start=DEMO_START, weeks=DEMO_WEEKS
            )
            files[country] = data_dir / f"{country.lower()}-encounters.csv"
            write_csv(rows, files[country])
            progress.advance(gen, len(rows))

        ing = progress.add_task("Ingesting (validate, store at home)", total=sum(volumes.values()))
        for country in countries:
            report = ingest(result.members[country], files[country])
            result.records[country] = report.stored
            result.rejected_rows[country] = report.rejected_rows
            progress.advance(ing, report.rows)
            # Reference data: illustrative sample files shipped with the demo.
            for sample in sample_files(country):
                ref = ingest(result.members[country], sample)
                result.rejected_rows[country] += ref.rejected_rows

        pub = progress.add_task("Publishing (policy, sign, Kafka)", total=len(countries))
        for country in countries:
            out = publish(result.members[country])
            result.published[country] = out.drain.acknowledged
            result.suppressed[country] = out.plan.suppressed_cells
            result.cells[country] = out.plan.published_cells
            result.reference[country] = (
                {k: c.new + c.revised for k, c in out.reference.kinds.items()}
                if out.reference is not None
                else {}
            )
            progress.advance(pub)
        # A correction and a withdrawal: the picture shows the latest revision.
        for country, subject, action, changes in DEMO_REVISIONS:
            if country not in result.members:
                continue
            if action == "correct":
                corrections.correct(result.members[country], subject, changes, "demo correction")
            else:
                corrections.withdraw(result.members[country], subject, "demo withdrawal")
            again = publish(result.members[country])
            result.published[country] += again.drain.acknowledged
            result.revisions.append((country, subject, action))

        total = sum(result.published.values())
        app = progress.add_task("Aggregating (verify, apply)", total=total)
        result.stats = aggregate_once(agg, progress=lambda n: progress.advance(app, n))
        progress.update(app, completed=result.stats.messages)
        for country, home in result.members.items():
            opened: dict[str, int] = {}
            for item in read_inbox(home).items:
                if item.body is not None:
                    opened[item.producer] = opened.get(item.producer, 0) + 1
            result.inbox[country] = opened
    result.report = write_report(agg, directory / "report.html")
    return result


def write_report(agg: Home, path: Path) -> Path:
    """The Secretariat's self-contained HTML report of the picture."""
    from node.report.audience import Scope
    from node.report.html import report_html
    from node.store.picture import PictureStore

    with PictureStore(agg.store_path) as store:
        path.write_text(report_html(store, Scope("TS")), encoding="utf-8")
    return path


def summary_table(result: DemoResult) -> Table:
    table = Table(title="Demo federation", title_justify="left")
    columns = (
        "country",
        "raw records (stay home)",
        "cells published",
        "cells suppressed",
        "reference events",
    )
    for col in columns:
        table.add_column(col, justify="left" if col == "country" else "right")
    for country, home in result.members.items():
        table.add_row(
            home.country,
            str(result.records[country]),
            str(result.cells.get(country, result.published[country])),
            str(result.suppressed[country]),
            str(sum(result.reference.get(country, {}).values())),
        )
    return table
