"""The shared topic's configuration, and whether a topic can serve a full rebuild.

The shared topic is the federation's record: a Secretariat rebuilding its
picture, or an operator replaying the topic after a restore, reads it from the
beginning. So it must keep every event as long as any policy may: time-based
retention of the regional floor's ``max_retention_days`` (the longest any
national policy may state) plus a margin, never size-based deletion, and no
compaction (the record key is the producing country, so compaction would keep
one event per country). docs/guarantees.md says why this and not compaction by
subject.

Every place that creates the shared topic takes its settings from
:func:`shared_topic_configs`; ``corredor doctor`` checks a live topic with
:func:`rebuild_problems`.
"""

from __future__ import annotations

from collections.abc import Mapping

DAY_MS = 86_400_000

#: ``LogAppendTime``: the broker stamps every record with its own clock when it
#: appends it, so the aggregator judges key validity, revocation and retention
#: against a time no signer chose (docs/guarantees.md, *Time model*).
BROKER_TIME_CONFIGS: dict[str, str] = {"message.timestamp.type": "LogAppendTime"}

#: Days a message stays beyond the longest retention a policy may state:
#: ``retain_until`` is a date (the event lives to its end), the outbox may hold
#: an event for a while before the broker appends it, and clocks differ.
RETENTION_MARGIN_DAYS = 30


def required_retention_ms(max_retention_days: int) -> int:
    """How long the shared topic must keep a message for a full rebuild."""
    return (max_retention_days + RETENTION_MARGIN_DAYS) * DAY_MS


def shared_topic_configs(max_retention_days: int) -> dict[str, str]:
    """Topic settings for the shared topic, whatever the broker's defaults
    (Kafka's own is 7 days of retention; a cluster may set size limits or
    compaction by default). ``max_retention_days``: the regional floor's (the
    caller reads it: transport takes plain arguments)."""
    days = max_retention_days
    return {
        **BROKER_TIME_CONFIGS,
        "cleanup.policy": "delete",
        "retention.ms": str(required_retention_ms(days)),
        "retention.bytes": "-1",
    }


def rebuild_problems(
    configs: Mapping[str, str], max_retention_days: int, log_start_offsets: int = 0
) -> list[str]:
    """Why a topic with these settings cannot serve a full rebuild ([] if it can).

    ``configs`` are the topic's effective settings (as DescribeConfigs gives
    them, broker defaults included); ``log_start_offsets``: the sum over its
    partitions of the first offset still held (above 0, messages are gone)."""
    problems: list[str] = []
    policy = configs.get("cleanup.policy", "delete")
    if "compact" in policy.split(","):
        problems.append(
            f"cleanup.policy={policy}: the record key is the producing country, so "
            "compaction keeps one event per country"
        )
    if "delete" in policy.split(","):
        required = required_retention_ms(max_retention_days)
        retention = int(configs.get("retention.ms", str(7 * DAY_MS)))
        if retention >= 0 and retention < required:
            problems.append(
                f"retention.ms={retention} keeps messages {retention / DAY_MS:.1f} days, but "
                f"policies may retain events {max_retention_days} days (the regional floor's "
                f"max_retention_days; set retention.ms to at least {required})"
            )
        size = int(configs.get("retention.bytes", "-1"))
        if size >= 0:
            problems.append(
                f"retention.bytes={size}: Kafka deletes the oldest messages past that size, "
                "whatever their retention (set it to -1)"
            )
    stamp = configs.get("message.timestamp.type", "CreateTime")
    if stamp != "LogAppendTime":
        problems.append(
            f"message.timestamp.type={stamp}: the aggregator judges events on the broker's "
            "append time and sets aside every record stamped by its producer "
            "(set it to LogAppendTime)"
        )
    if log_start_offsets > 0:
        problems.append(
            f"{log_start_offsets} messages at the start of the topic are already deleted: "
            "a rebuild from it misses them (restore the picture from a backup instead)"
        )
    return problems
