"""A fixed regional picture built without Kafka: seeded members along the
corridor publish through the real policy engine to an in-memory topic, and an
aggregator applies it. Shared by the view, export and report tests."""

from __future__ import annotations

from pathlib import Path

from node.aggregator.apply import Aggregator
from node.config import Home
from node.federation import trust
from node.home import event_codec, regional_floor
from node.member.drain import drain_outbox
from node.member.intake import ingest
from node.member.member_home import home_policy
from node.member.staging import stage_publication
from node.store.node_store import NodeStore
from node.store.picture import PictureStore
from node.transport.memory import MemorySink, MemorySource, MemoryTopic
from tests.factories import aggregator_for, member_with_data

#: Members and their records over WEEKS weeks (the planted CHN surge ends them).
VOLUMES: dict[str, int] = {"PAN": 4000, "CRI": 3000, "GTM": 1500, "MEX": 2000}
WEEKS = 12
SEED = 11
SAMPLES = Path(__file__).resolve().parents[1] / "node" / "demo" / "samples"


def _publish(home: Home, topic: MemoryTopic) -> None:
    with NodeStore(home.store_path) as store:
        stage_publication(home, store, home_policy(home))
        drain_outbox(store, MemorySink(topic))


def build_picture(base: Path, volumes: dict[str, int] | None = None) -> Home:
    """The aggregator home of a fixed federation (same data every run)."""
    topic = MemoryTopic()
    homes = []
    for country, n in (volumes or VOLUMES).items():
        home = member_with_data(base, country, n, seed=SEED, weeks=WEEKS)[0]
        for sample in sorted((SAMPLES / country.lower()).glob("*")):
            if sample.suffix in (".csv", ".json", ".jsonl"):
                ingest(home, sample)
        homes.append(home)
    agg = aggregator_for(base, homes)
    for home in homes:
        _publish(home, topic)
    with PictureStore(agg.store_path) as store:
        aggregator = Aggregator(
            store, event_codec(), trust.key_directory(agg), floor=regional_floor()
        )
        stats = aggregator.apply_batch(MemorySource(topic).poll_batch(0, 10**9))
    assert stats.rejected_total == 0, stats.as_dict()
    return agg
