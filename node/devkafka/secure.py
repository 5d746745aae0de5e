"""The secure local cluster: TLS files, SCRAM users and the ACLs of the federation.

``corredor kafka up --secure`` runs the broker with one client listener,
SASL_SSL with SCRAM-SHA-512, and the StandardAuthorizer (deny unless allowed):

    principal         may
    User:<ISO3>       WRITE + DESCRIBE the shared topic; READ + DESCRIBE the
                      control and picture topics; groups prefixed "<ISO3>."
    User:secretariat  READ + DESCRIBE the shared topic (the only reader);
                      READ, WRITE, DESCRIBE the control and picture topics;
                      groups prefixed "secretariat." and "corredor-aggregator"
    User:admin        super user (inter-broker traffic, set-up, operators)
    User:controller   super user, only on the loopback controller listener

Kafka ACLs act on topics, not on records: a country may write any record to the
shared topic, so the aggregator's signature check is what stops one country
speaking for another. ACLs make sure no country reads what others sent.

Set-up order: the CA, the broker certificate and every password are written
before formatting (passwords in mode-0600 files under ``security/credentials``);
the admin's SCRAM credential is added at format time (the broker needs it for
its own inter-broker connections before any client can connect); the other
users, the topics and the ACLs are created with the admin client once the
broker is up, the way an operator adds a member to a running federation.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from node.config import regional_policy_path
from node.devkafka.pki import init_ca, issue, write_private
from node.devkafka.state import ClusterInfo, SecurityInfo
from node.errors import KafkaSetupError, TransportError
from node.policy.loader import load_floor
from node.topics import (
    AGGREGATOR_GROUP,
    CONTROL_TOPIC,
    EVENTS_TOPIC,
    PICTURE_TOPIC,
    dead_letter_topic_for,
    group_prefix,
)
from node.transport.provision import AclSpec, TopicSpec, topics_seen
from node.transport.provision import provision as provision_cluster
from node.transport.topic_config import shared_topic_configs

__all__ = [
    "ADMIN_USER",
    "AGGREGATOR_GROUP",
    "CONTROLLER_USER",
    "CONTROL_TOPIC",
    "DEFAULT_SHARED_TOPIC",
    "PICTURE_TOPIC",
    "RCM_COUNTRIES",
    "SECRETARIAT_USER",
    "Grant",
    "controller_password",
    "federation_grants",
    "federation_topics",
    "group_prefix",
    "prepare_security",
    "provision",
]

ADMIN_USER = "admin"
SECRETARIAT_USER = "secretariat"
#: SASL/PLAIN user of the controller listener (controllers and brokers only).
CONTROLLER_USER = "controller"
SCRAM_MECHANISM = "SCRAM-SHA-512"

#: The shared topic a local cluster is made with (the names are node.topics').
DEFAULT_SHARED_TOPIC = EVENTS_TOPIC

#: RCM members and invited countries (DESIGN.md section 1): Belize, Canada,
#: Costa Rica, Dominican Republic, El Salvador, Guatemala, Honduras, Mexico,
#: Nicaragua, Panama, United States.
RCM_COUNTRIES = ("BLZ", "CAN", "CRI", "DOM", "GTM", "HND", "MEX", "NIC", "PAN", "SLV", "USA")


#: One ALLOW rule: ``principal`` may do ``operation`` on a topic or group
#: (transport's own ACL record: the one provisioner creates them).
Grant = AclSpec


def federation_grants(
    members: Sequence[str],
    *,
    shared_topic: str = DEFAULT_SHARED_TOPIC,
    control_topic: str = CONTROL_TOPIC,
    picture_topic: str = PICTURE_TOPIC,
    secretariat: str = SECRETARIAT_USER,
) -> list[Grant]:
    """The ACL table of the federation (the admin needs none: super user)."""
    grants: list[Grant] = []
    for country in members:
        who = f"User:{country}"
        grants += [
            Grant(who, "topic", shared_topic, "literal", "WRITE"),
            Grant(who, "topic", shared_topic, "literal", "DESCRIBE"),
            Grant(who, "topic", control_topic, "literal", "READ"),
            # Members' signed statements (approvals, audit heads, linkage
            # bundles) travel here too; every record is signed, so a member
            # can add or shadow records, never forge one (docs/security.md).
            Grant(who, "topic", control_topic, "literal", "WRITE"),
            Grant(who, "topic", control_topic, "literal", "DESCRIBE"),
            Grant(who, "topic", picture_topic, "literal", "READ"),
            Grant(who, "topic", picture_topic, "literal", "DESCRIBE"),
            Grant(who, "group", group_prefix(country), "prefixed", "READ"),
        ]
    ts = f"User:{secretariat}"
    grants += [
        Grant(ts, "topic", shared_topic, "literal", "READ"),
        Grant(ts, "topic", shared_topic, "literal", "DESCRIBE"),
        # `doctor` checks that the topic's retention can serve a full rebuild.
        Grant(ts, "topic", shared_topic, "literal", "DESCRIBE_CONFIGS"),
    ]
    # The dead-letter topic (<shared>.dlq) is the Secretariat's alone.
    for topic in (control_topic, picture_topic, dead_letter_topic_for(shared_topic)):
        grants += [Grant(ts, "topic", topic, "literal", op) for op in ("READ", "WRITE", "DESCRIBE")]
    grants += [
        Grant(ts, "group", group_prefix(secretariat), "prefixed", "READ"),
        Grant(ts, "group", AGGREGATOR_GROUP, "prefixed", "READ"),
    ]
    return grants


def federation_topics(
    *,
    shared_topic: str = DEFAULT_SHARED_TOPIC,
    control_topic: str = CONTROL_TOPIC,
    picture_topic: str = PICTURE_TOPIC,
    partitions: int = 3,
    replication: int = 1,
    max_retention_days: int | None = None,
) -> list[TopicSpec]:
    """The federation's topics: the shared topic, kept as long as the regional
    floor lets any policy retain an event (``max_retention_days``, the floor's
    by default), the compacted control and picture topics, the dead letters."""
    days = (
        load_floor(regional_policy_path()).max_retention_days
        if max_retention_days is None
        else max_retention_days
    )
    compacted = {"cleanup.policy": "compact"}
    return [
        TopicSpec(shared_topic, partitions, replication, shared_topic_configs(days)),
        TopicSpec(control_topic, 1, replication, compacted),
        TopicSpec(picture_topic, 1, replication, compacted),
        TopicSpec(dead_letter_topic_for(shared_topic), 1, replication),
    ]


def new_password() -> str:
    """URL-safe: no commas, quotes or blanks, so it fits --add-scram and JAAS lines."""
    return secrets.token_urlsafe(24)


def prepare_security(
    base_dir: Path,
    *,
    members: Sequence[str] = RCM_COUNTRIES,
    shared_topic: str = DEFAULT_SHARED_TOPIC,
) -> SecurityInfo:
    """Write the CA, the broker's certificate and every user's password under
    ``base_dir/security``. Files holding secrets are mode 0600."""
    members = sorted({m.upper() for m in members})
    bad = [m for m in members if len(m) != 3 or not m.isalpha()]
    if bad:
        raise KafkaSetupError(f"member principals are ISO 3166-1 alpha-3 codes, not {bad}")
    if not members:
        raise KafkaSetupError("a secure cluster needs at least one member country")
    directory = base_dir / "security"
    tls = directory / "tls"
    ca = init_ca(tls)
    broker = issue(tls, "broker", ("127.0.0.1", "localhost"))
    credentials = directory / "credentials"
    credentials.mkdir(parents=True, exist_ok=True)
    credentials.chmod(0o700)
    info = SecurityInfo(
        ca_file=ca.resolve(),
        keystore=broker.keystore.resolve(),
        credentials_dir=credentials.resolve(),
        admin=ADMIN_USER,
        secretariat=SECRETARIAT_USER,
        members=list(members),
        shared_topic=shared_topic,
        control_topic=CONTROL_TOPIC,
        picture_topic=PICTURE_TOPIC,
        mechanism=SCRAM_MECHANISM,
    )
    for user in [*info.users, CONTROLLER_USER]:
        write_private(credentials / f"{user}.password", (new_password() + "\n").encode("ascii"))
    return info


def controller_password(info: SecurityInfo) -> str:
    path = info.credentials_dir / f"{CONTROLLER_USER}.password"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KafkaSetupError(f"cannot read the credentials file {path}: {exc}") from exc


def provision(info: ClusterInfo, *, timeout_ms: int = 30_000) -> None:
    """As the admin: create the other SCRAM users, the federation's topics and
    ACLs, through transport's one provisioner (``node.transport.provision``,
    which ``deploy init-kafka`` uses on a production cluster too)."""
    sec = info.security
    if sec is None:
        raise KafkaSetupError("provision() is for a secure cluster")
    config: dict[str, Any] = info.client_config()
    config.update(request_timeout_ms=timeout_ms)
    grants = federation_grants(
        sec.members,
        shared_topic=sec.shared_topic,
        control_topic=sec.control_topic,
        picture_topic=sec.picture_topic,
        secretariat=sec.secretariat,
    )
    topics = federation_topics(
        shared_topic=sec.shared_topic,
        control_topic=sec.control_topic,
        picture_topic=sec.picture_topic,
        replication=1 if len(info.nodes) == 1 else 3,
    )
    try:
        # The provisioner keeps Kafka's order: users, then ACLs, then topics, so
        # a broker that knows the topics also knows the users and the ACLs.
        provision_cluster(
            config,
            users={u: sec.password(u) for u in sec.users if u != sec.admin},
            topics=topics,
            acls=grants,
            mechanism=sec.mechanism,
            timeout_s=timeout_ms / 1000,
            client_id="corredor-devkafka-setup",
        )
    except TransportError as exc:
        raise KafkaSetupError(f"setting up users, topics and ACLs failed: {exc}") from exc
    if len(info.nodes) > 1:
        _settle(config, sec, len(info.nodes), timeout_ms)


def _settle(config: dict[str, Any], sec: SecurityInfo, nodes: int, timeout_ms: int) -> None:
    """Wait until every broker has applied the set-up, not only the one that answered.

    Each broker replays the metadata log on its own; right after set-up a client
    routed to a lagging broker is refused. kafka-python sends each request to a
    random broker, so fresh clients ask until 4 x ``nodes`` in a row see the
    topics (created after users and ACLs, hence proof of both).
    """
    topics = [sec.shared_topic, sec.control_topic, sec.picture_topic]
    deadline = time.monotonic() + timeout_ms / 1000
    streak = 0
    while streak < 4 * nodes:
        if time.monotonic() > deadline:
            raise KafkaSetupError("brokers did not all apply the users, ACLs and topics in time")
        known = topics_seen(config, client_id="corredor-devkafka-setup")
        streak = streak + 1 if known.issuperset(topics) else 0
        if streak == 0:
            time.sleep(0.2)
