"""Two `publish` runs at once send each outbox row once (issue 14 item 8).

Both publishes run as real processes against the real broker, each with its
background drainer (``--overlap on``). The test holds SQLite's write lock so
that no acknowledgement can be recorded while both are running: a drainer that
reads the outbox then sees every row still pending. Without a lock over
draining, both drainers sent the whole outbox and every event reached the
topic twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.factories import member_with_data

ROOT = Path(__file__).resolve().parents[1]


def _topic_end(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return sum(ends.values())
    finally:
        consumer.close()


def _topic_digests(bootstrap: str, topic: str, want: int) -> Counter[str]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + 60
    try:
        while sum(seen.values()) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                seen.update(hashlib.sha256(r.value).hexdigest() for r in records)
    finally:
        consumer.close()
    return seen


def _flock_waiters(path: Path) -> int:
    """Processes blocked in flock() on ``path``, from /proc/locks."""
    inode = path.stat().st_ino
    waiting = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 1] == "FLOCK":
            dev_inode = fields[fields.index("->") + 5]
            if int(dev_inode.rsplit(":", 1)[1]) == inode:
                waiting += 1
    return waiting


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs /proc/locks (Linux)")
def test_two_concurrent_publishes_send_each_event_once(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    home, _rows, _ = member_with_data(tmp_path, "PAN", 3000, topic=topic)
    home.config.kafka.bootstrap = kafka_bootstrap
    home.save()
    # Ingest staged the outbox; nothing is sent yet.
    with closing(sqlite3.connect(home.store_path)) as conn, conn:
        staged = [bytes(v) for (v,) in conn.execute("SELECT msg_value FROM outbox")]
    assert len(staged) > 20
    expected = Counter(hashlib.sha256(v).hexdigest() for v in staged)

    staging_lock = home.store_path.with_name(home.store_path.name + ".staging.lock")
    lock_fd = os.open(staging_lock, os.O_RDWR | os.O_CREAT, 0o600)
    blocker = sqlite3.connect(home.store_path, isolation_level=None)
    publishes: list[subprocess.Popen[str]] = []
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # the parents wait here, drainers run
        blocker.execute("BEGIN IMMEDIATE")  # no acknowledgement can be recorded
        command = [sys.executable, "-m", "node.cli", "--home", str(home.path), "publish"]
        for _ in range(2):
            publishes.append(
                subprocess.Popen(
                    [*command, "--overlap", "on", "--format", "json"],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        _wait(lambda: _topic_end(kafka_bootstrap, topic) >= len(staged), "the first drainer")
        drain_lock = home.store_path.with_name(home.store_path.name + ".drain.lock")
        # Either the second drainer sent the outbox again, or it waits its turn.
        _wait(
            lambda: (
                _topic_end(kafka_bootstrap, topic) >= 2 * len(staged)
                or (drain_lock.exists() and _flock_waiters(drain_lock) >= 1)
            ),
            "the second drainer to send or to wait",
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
        outputs = [process.communicate(timeout=120) for process in publishes]
    for process, (_out, err) in zip(publishes, outputs, strict=True):
        assert process.returncode == 0, err
    end = _topic_end(kafka_bootstrap, topic)
    assert end == len(staged), f"{end} messages on the topic for {len(staged)} events"
    assert _topic_digests(kafka_bootstrap, topic, end) == expected
    with closing(sqlite3.connect(home.store_path)) as conn, conn:
        pending = conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]
    assert pending == 0
