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

import contextlib
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError, TopicAlreadyExistsError

from node.config import dead_letter_topic_for
from node.devkafka.pki import init_ca, issue, write_private
from node.devkafka.state import ClusterInfo, SecurityInfo
from node.errors import KafkaSetupError
from node.transport.topic_config import shared_topic_configs

ADMIN_USER = "admin"
SECRETARIAT_USER = "secretariat"
#: SASL/PLAIN user of the controller listener (controllers and brokers only).
CONTROLLER_USER = "controller"
SCRAM_MECHANISM = "SCRAM-SHA-512"

DEFAULT_SHARED_TOPIC = "corredor.events"
CONTROL_TOPIC = "corredor.control"
PICTURE_TOPIC = "corredor.picture"
#: The aggregator's default consumer group (node.config.DEFAULT_GROUP).
AGGREGATOR_GROUP = "corredor-aggregator"

#: RCM members and invited countries (DESIGN.md section 1): Belize, Canada,
#: Costa Rica, Dominican Republic, El Salvador, Guatemala, Honduras, Mexico,
#: Nicaragua, Panama, United States.
RCM_COUNTRIES = ("BLZ", "CAN", "CRI", "DOM", "GTM", "HND", "MEX", "NIC", "PAN", "SLV", "USA")


class Grant(NamedTuple):
    """One ALLOW rule: ``principal`` may do ``operation`` on a resource."""

    principal: str
    resource: str  # "topic" | "group"
    name: str
    pattern: str  # "literal" | "prefixed"
    operation: str  # "READ" | "WRITE" | "DESCRIBE"


def group_prefix(user: str) -> str:
    """Consumer groups a principal may use start with this."""
    return f"{user}."


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


def _acl(grant: Grant) -> ACL:
    resource = ResourceType.TOPIC if grant.resource == "topic" else ResourceType.GROUP
    pattern = (
        ACLResourcePatternType.PREFIXED
        if grant.pattern == "prefixed"
        else ACLResourcePatternType.LITERAL
    )
    return ACL(
        principal=grant.principal,
        host="*",
        operation=ACLOperation[grant.operation],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(resource, grant.name, pattern),
    )


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
    """As the admin: create the other SCRAM users, the federation's topics and ACLs."""
    sec = info.security
    if sec is None:
        raise KafkaSetupError("provision() is for a secure cluster")
    config: dict[str, Any] = info.client_config()
    config.update(client_id="corredor-devkafka-setup", request_timeout_ms=timeout_ms)
    try:
        admin = KafkaAdminClient(**config)
    except KafkaError as exc:
        raise KafkaSetupError(f"cannot connect to the secure local Kafka as admin: {exc}") from exc
    try:
        # Order matters: brokers apply metadata in log order, so a broker that
        # knows the topics (created last) also knows the users and the ACLs.
        _create_users(admin, sec)
        grants = federation_grants(
            sec.members,
            shared_topic=sec.shared_topic,
            control_topic=sec.control_topic,
            picture_topic=sec.picture_topic,
            secretariat=sec.secretariat,
        )
        result = admin.create_acls([_acl(g) for g in grants])
        if result["failed"]:
            raise KafkaSetupError(f"creating ACLs failed: {result['failed'][:3]}")
        _create_topics(admin, sec, len(info.nodes), timeout_ms)
    except KafkaError as exc:
        raise KafkaSetupError(f"setting up users, topics and ACLs failed: {exc}") from exc
    finally:
        admin.close()
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
        try:
            admin = KafkaAdminClient(**config)
            try:
                known = set(admin.list_topics())
            finally:
                admin.close()
        except KafkaError:
            known = set()
        streak = streak + 1 if known.issuperset(topics) else 0
        if streak == 0:
            time.sleep(0.2)


def _create_users(admin: KafkaAdminClient, sec: SecurityInfo) -> None:
    users = [u for u in sec.users if u != sec.admin]
    upserts = [
        UserScramCredentialUpsertion(u, ScramMechanism.SCRAM_SHA_512, sec.password(u))
        for u in users
    ]
    errors = {u: e for u, e in admin.alter_user_scram_credentials(upserts).items() if e}
    if errors:
        # Error messages name the user and the problem, never the password.
        raise KafkaSetupError(f"creating SCRAM users failed: {errors}")


def _create_topics(admin: KafkaAdminClient, sec: SecurityInfo, nodes: int, timeout_ms: int) -> None:
    replication = 1 if nodes == 1 else 3
    compacted = {"cleanup.policy": "compact"}
    wanted = [
        NewTopic(sec.shared_topic, 3, replication, topic_configs=shared_topic_configs()),
        NewTopic(sec.control_topic, 1, replication, topic_configs=compacted),
        NewTopic(sec.picture_topic, 1, replication, topic_configs=compacted),
        NewTopic(dead_letter_topic_for(sec.shared_topic), 1, replication),
    ]
    existing = set(admin.list_topics())
    missing = [t for t in wanted if t.name not in existing]
    if missing:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(missing)
    admin.wait_for_topics([t.name for t in wanted], timeout_ms=timeout_ms)
