"""``aggregate --rebuild``: a fresh picture from the beginning of the shared topic.

The rebuild reads every partition from its first offset, without a consumer
group, and applies each message through an aggregator made where every
aggregator is made (``node.aggregator.run.build_aggregator``), into a new
store file beside the live one (``picture.db.rebuild``). The live picture is
not touched meanwhile, and whoever reads it (``serve``, ``report``) sees it
whole. Only once the rebuild has caught up with the end of the topic, as it
was when the rebuild started, is the new picture swapped in. The swap copies
the new store into the live one with SQLite's backup API in one step, a
single write transaction, so a reader sees the old picture or the new one,
never a mix. The picture replaced is kept as ``picture.db.before-rebuild``,
with its audit log.

What the old store had already sent on (the picture published back, relayed
restricted events, dead letters) is carried over by event id and topic
position, so nothing goes out twice. The aggregator's consumer group is then
committed at the positions the rebuild reached, so ``aggregate --follow``
resumes exactly there. An aggregator running in the group meanwhile would
keep writing to the store being replaced, so the rebuild refuses to start,
and to swap, while the group has an active member.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from node.aggregator.apply import consume_until_caught_up
from node.aggregator.dead_letters import dead_letter
from node.aggregator.relay import publish_picture, relay_restricted
from node.aggregator.run import build_aggregator
from node.aggregator.stats import ApplyStats
from node.config import Home
from node.errors import ConfigError, StoreError, TransportError
from node.home import ensure_shared_topic, event_codec, regional_floor, require_aggregator
from node.store import audit
from node.store.picture import PictureStore
from node.transport.clients import replay_source
from node.transport.kafka_admin import active_group_members, commit_group_offsets

#: The new picture while it is built, and the old one once replaced.
REBUILD_SUFFIX = ".rebuild"
BEFORE_SUFFIX = ".before-rebuild"


@dataclass(frozen=True)
class RebuildProgress:
    """How far a rebuild is: messages applied of those on the topic when it started."""

    done: int
    total: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Messages per second so far."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None before the first batch)."""
        if self.done == 0 or self.rate == 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)


@dataclass
class RebuildResult:
    stats: ApplyStats
    total: int
    seconds: float
    picture: Path
    previous: Path | None
    positions: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.stats.as_dict(),
            "topic_messages": self.total,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.stats.messages / self.seconds) if self.seconds else 0,
            "picture": str(self.picture),
            "previous": str(self.previous) if self.previous else None,
        }


def _store_files(path: Path) -> list[Path]:
    return [
        path,
        path.with_name(path.name + "-wal"),
        path.with_name(path.name + "-shm"),
        audit.head_path(path),
    ]


def _remove_store(path: Path) -> None:
    for p in _store_files(path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _refuse_if_running(address: str, group: str, security: dict[str, Any] | None) -> None:
    members = active_group_members(address, group, security=security)
    if members:
        raise ConfigError(
            f"consumer group {group} has {members} active member(s): an aggregator is "
            "running on this picture (aggregate --follow?). Stop it, rebuild, then start "
            "it again; it resumes where the rebuild ended"
        )


def _tables(conn: sqlite3.Connection, schema: str) -> set[str]:
    rows = conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")
    return {str(r[0]) for r in rows}


#: (table, column marking "sent", columns naming the same row in both stores).
_SENT_MARKS = (
    ("picture_outbox", "published_at", ("event_id",)),
    ("relay_outbox", "relayed_at", ("event_id",)),
    ("picture_tombstone", "published_at", ("subject",)),
    ("rejected_message", "dead_lettered_at", ("topic", "partition", '"offset"', "reason")),
)


def carry_over_sent(fresh: Path, live: Path) -> None:
    """Mark in the new store what the live store already sent on (picture
    topic, relays, tombstones, dead letters), matched by event id, subject or
    topic position, so that nothing is sent twice after the swap."""
    conn = sqlite3.connect(fresh, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS old", (str(live),))  # only read
        ours, theirs = _tables(conn, "main"), _tables(conn, "old")
        conn.execute("BEGIN IMMEDIATE")
        for table, mark, keys in _SENT_MARKS:
            if table not in ours or table not in theirs:
                continue
            match = " AND ".join(f"o.{k} IS t.{k}" for k in keys)
            conn.execute(
                f"UPDATE {table} AS t SET {mark} = ("
                f"SELECT o.{mark} FROM old.{table} AS o WHERE {match} AND o.{mark} IS NOT NULL "
                f"LIMIT 1) WHERE t.{mark} IS NULL AND EXISTS ("
                f"SELECT 1 FROM old.{table} AS o WHERE {match} AND o.{mark} IS NOT NULL)"
            )
        if "dead_letter_reference" in ours and "dead_letter_reference" in theirs:
            # Dead letters sent by reference: the same rows, under the new ids.
            cols = [
                str(r[1])
                for r in conn.execute("PRAGMA old.table_info(dead_letter_reference)")
                if r[1] != "rejected_id"
            ]
            listed = ", ".join(cols)
            picked = ", ".join(f"d.{c}" for c in cols)
            conn.execute(
                f"INSERT OR IGNORE INTO dead_letter_reference (rejected_id, {listed}) "
                f"SELECT n.id, {picked} FROM old.dead_letter_reference AS d "
                "JOIN old.rejected_message AS o ON o.id = d.rejected_id "
                "JOIN rejected_message AS n ON n.topic IS o.topic AND n.partition IS o.partition "
                'AND n."offset" IS o."offset" AND n.reason IS o.reason'
            )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise StoreError(f"{fresh}: cannot carry over what {live} already sent: {exc}") from exc
    finally:
        conn.close()


def _purged_through(live: Path) -> date | None:
    """The latest ``retain_until`` among the events the live store purged."""
    conn = sqlite3.connect(live)
    try:
        row = conn.execute(
            "SELECT max(retain_until) FROM event_use WHERE purged_at IS NOT NULL"
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return date.fromisoformat(str(row[0])[:10]) if row and row[0] else None


def _copy_store(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` with SQLite's backup API in one step:
    one write transaction on ``target``, so its readers see all or nothing."""
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot copy {source} to {target}: {exc}") from exc
    finally:
        src.close()
    head = audit.head_path(source)
    if head.exists():
        tmp = audit.head_path(target).with_name(f".{audit.head_path(target).name}.tmp")
        shutil.copyfile(head, tmp)
        os.replace(tmp, audit.head_path(target))


def swap_in(fresh: Path, live: Path) -> Path | None:
    """Put the picture at ``fresh`` in place of the one at ``live``; keep the
    one replaced beside it (returned), and remove ``fresh``."""
    previous: Path | None = None
    if live.exists():
        previous = live.with_name(live.name + BEFORE_SUFFIX)
        _remove_store(previous)
        _copy_store(live, previous)
        _copy_store(fresh, live)
    else:
        _copy_store(fresh, live)
    _remove_store(fresh)
    return previous


def rebuild_picture(
    home: Home,
    *,
    bootstrap: str | None = None,
    max_records: int = 2_000,
    progress: Callable[[RebuildProgress], None] | None = None,
) -> RebuildResult:
    """Build the picture again from the beginning of the shared topic and swap
    it in once caught up (see the module's docstring)."""
    require_aggregator(home)
    settings = home.config.kafka
    address = bootstrap or home.bootstrap
    security = home.kafka_security()
    ensure_shared_topic(home, address, security)
    _refuse_if_running(address, settings.group_id, security)
    live = home.store_path
    fresh = live.with_name(live.name + REBUILD_SUFFIX)
    _remove_store(fresh)  # a rebuild that stopped half-way starts again
    started = time.monotonic()
    try:
        with PictureStore(fresh) as store:
            aggregator = build_aggregator(home, store, event_codec(), floor=regional_floor())
            source = replay_source(settings.client, address, settings.topic, security=security)
            try:
                total = source.open().total()
                done = 0
                if progress is not None:
                    progress(RebuildProgress(0, total, 0.0))

                def on_batch(n: int) -> None:
                    nonlocal done
                    done += n
                    if progress is not None:
                        progress(RebuildProgress(done, total, time.monotonic() - started))

                stats = consume_until_caught_up(
                    aggregator, source, max_records=max_records, progress=on_batch
                )
                if not source.caught_up():
                    raise TransportError(
                        f"the rebuild stopped before the end of {settings.topic} "
                        f"({done} of {total} messages); the live picture is untouched: "
                        "run it again"
                    )
                positions = source.positions()
            finally:
                source.close()
                aggregator.close()
        if live.exists():
            carry_over_sent(fresh, live)
            purged_through = _purged_through(live)
            if purged_through is not None:
                # What the live picture purged is purged again (tombstones
                # included), then marked sent where the live store sent it.
                with PictureStore(fresh) as store:
                    store.purge_expired(purged_through + timedelta(days=1))
                carry_over_sent(fresh, live)
        _refuse_if_running(address, settings.group_id, security)
        previous = swap_in(fresh, live)
    except BaseException:
        _remove_store(fresh)
        raise
    if positions:
        commit_group_offsets(
            address, settings.topic, settings.group_id, positions, security=security
        )
    with PictureStore(live) as store:
        # What a rebuild found new to send on goes now, as after aggregate --once.
        relay_restricted(home, store, address, security)
        publish_picture(home, store, address, security)
        dead_letter(home, store, address, security)
    return RebuildResult(stats, total, time.monotonic() - started, live, previous, positions)
