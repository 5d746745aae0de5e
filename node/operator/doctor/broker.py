"""Doctor checks that ask the broker: it is reachable, it accepts this home's
identity, the shared topic exists and keeps what a rebuild needs, and (the
aggregator) the consumer group is not too far behind."""

from __future__ import annotations

from typing import Any

from node.aggregator.apply import DEAD_LETTER_REASONS
from node.config import Home
from node.errors import CorredorError
from node.home import regional_floor
from node.operator.doctor.report import DoctorReport
from node.store.picture import PictureStore
from node.transport import health
from node.transport.topic_config import rebuild_problems, required_retention_ms


def broker_checks(report: DoctorReport, home: Home, address: str, timeout_ms: int) -> bool:
    try:
        answered = health.reachable(address)
    except CorredorError as exc:
        report.add("broker", False, f"{exc}; is Kafka up, and is kafka.bootstrap right?")
        report.add("credentials", None, "skipped: no broker")
        report.add("topic", None, "skipped: no broker")
        report.add("retention", None, "skipped: no broker")
        return False
    report.add("broker", True, f"{answered} accepts connections")
    settings = home.config.kafka
    who = settings.username or "(no SASL user)"
    try:
        security = home.kafka_security()
        topics = health.visible_topics(address, security, timeout_ms=timeout_ms)
    except CorredorError as exc:
        report.add(
            "credentials",
            False,
            f"{settings.security_protocol} as {who} was refused ({exc}); check "
            "kafka.username, the password file, kafka.ssl_cafile and the listener's protocol",
        )
        report.add("topic", None, "skipped: not logged in")
        report.add("retention", None, "skipped: not logged in")
        return False
    report.add("credentials", True, f"{settings.security_protocol} as {who}")
    if settings.topic in topics:
        report.add("topic", True, f"{settings.topic} exists")
        _retention_check(report, home, address, security, timeout_ms)
    else:
        report.add(
            "topic",
            False,
            f"the shared topic {settings.topic} does not exist or this principal may not "
            "describe it; `corredor deploy init-kafka` creates it and its ACLs",
        )
        report.add("retention", None, "skipped: no shared topic")
    return True


def _retention_check(
    report: DoctorReport,
    home: Home,
    address: str,
    security: dict[str, Any] | None,
    timeout_ms: int,
) -> None:
    """Can the shared topic serve a full rebuild of the picture?"""
    topic = home.config.kafka.topic
    try:
        days = regional_floor().max_retention_days
    except CorredorError as exc:
        report.add("retention", None, f"skipped: the regional floor does not load ({exc})")
        return
    try:
        found = health.topic_retention(address, topic, security, timeout_ms=timeout_ms)
    except CorredorError as exc:
        # Members may not read topic configurations; the Secretariat and the
        # cluster admin may.
        report.add("retention", None, f"not checked: {exc}")
        return
    report.figures["topic_retention_ms"] = int(found.configs.get("retention.ms", "-1"))
    report.figures["topic_log_start"] = found.log_start
    problems = rebuild_problems(found.configs, days, found.log_start)
    if problems:
        required = required_retention_ms(days)
        report.add(
            "retention",
            False,
            f"{topic} cannot serve a full rebuild: " + "; ".join(problems) + ". As the "
            f"cluster admin: `corredor kafka tool kafka-configs --alter --entity-type topics "
            f"--entity-name {topic} --add-config retention.ms={required},retention.bytes=-1`",
        )
    else:
        report.add(
            "retention",
            True,
            f"{topic} keeps every message at least {days} days (the regional floor's "
            "longest retention) and has lost none",
        )


def aggregator_figures(
    report: DoctorReport, home: Home, address: str, online: bool, max_lag: int, timeout_ms: int
) -> None:
    with PictureStore(home.store_path) as store:
        quarantined = store.rejected_by_reason()
        report.figures.update(
            quarantined=sum(quarantined.values()),
            quarantined_by_reason=quarantined,
            dead_lettered=store.dead_letter_count(),
            dead_letters_pending=len(store.pending_dead_letters(DEAD_LETTER_REASONS)),
            relay_pending=len(store.pending_relay()),
        )
    if not online:
        report.add("lag", None, "skipped: not connected")
        return
    settings = home.config.kafka
    try:
        lag = health.group_lag(
            address, settings.topic, settings.group_id, home.kafka_security(), timeout_ms=timeout_ms
        )
    except CorredorError as exc:
        report.add("lag", False, f"cannot measure the consumer lag: {exc}")
        return
    report.figures.update(consumer_lag=lag.lag, topic_end=lag.end)
    if lag.lag > max_lag:
        report.add(
            "lag",
            False,
            f"group {settings.group_id} is {lag.lag} messages behind {settings.topic} "
            f"(limit {max_lag}); is `aggregate --follow` running?",
        )
    else:
        report.add("lag", True, f"group {settings.group_id} is {lag.lag} messages behind")
