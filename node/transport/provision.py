"""Provision a production cluster as its admin: SCRAM users, topics and ACLs.

Used by ``corredor deploy init-kafka`` (the compose stack's init service, or an
operator adding a country). Every step is idempotent: users are upserted,
existing topics and ACLs are left as they are (except the settings in
``ENFORCED_ON_EXISTING``, set again), so the command can run on every start of
the stack. Errors name users and topics, never passwords.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    NewTopic,
    ResourcePattern,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError, TopicAlreadyExistsError

from node.errors import TransportError
from node.transport.topic_config import BROKER_TIME_CONFIGS

#: The shared topic's time stamping (``node.transport.topic_config``, which
#: holds all of its settings): the broker's own clock, never the producer's.
SHARED_TOPIC_CONFIGS: dict[str, str] = dict(BROKER_TIME_CONFIGS)

#: Settings provisioning applies to a topic that exists already, too: without
#: them the aggregator refuses what the topic holds.
ENFORCED_ON_EXISTING: frozenset[str] = frozenset({"message.timestamp.type"})


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AclSpec:
    """ALLOW ``operation`` on a topic or group for ``principal`` (``User:NAME``)."""

    principal: str
    resource: str  # "topic" | "group"
    name: str
    pattern: str  # "literal" | "prefixed"
    operation: str  # "READ" | "WRITE" | "DESCRIBE" | ...


@dataclass
class ProvisionResult:
    users: list[str]
    topics_created: list[str]
    acls: int


def connect_admin(
    config: Mapping[str, Any], timeout_s: float, *, client_id: str = "corredor-init-kafka"
) -> KafkaAdminClient:
    """An admin client, retrying until the broker answers or ``timeout_s`` passes
    (the init service starts while the broker is still coming up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(client_id=client_id, **config)
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise TransportError(
                    f"no broker accepted the admin in {timeout_s:.0f} s: {exc}"
                ) from exc
            time.sleep(2)


def _acl(spec: AclSpec) -> ACL:
    return ACL(
        principal=spec.principal,
        host="*",
        operation=ACLOperation[spec.operation],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType.TOPIC if spec.resource == "topic" else ResourceType.GROUP,
            spec.name,
            ACLResourcePatternType.PREFIXED
            if spec.pattern == "prefixed"
            else ACLResourcePatternType.LITERAL,
        ),
    )


def provision(
    config: Mapping[str, Any],
    *,
    users: Mapping[str, str],
    topics: Sequence[TopicSpec],
    acls: Sequence[AclSpec],
    mechanism: str = "SCRAM-SHA-512",
    timeout_s: float = 120.0,
    client_id: str = "corredor-init-kafka",
) -> ProvisionResult:
    """Upsert SCRAM ``users`` (name -> password), then the ACLs, then the topics.

    The one provisioner: ``deploy init-kafka`` on a production cluster and the
    local secure broker (``node.devkafka.secure``) both create theirs here."""
    scram = (
        ScramMechanism.SCRAM_SHA_512
        if mechanism == "SCRAM-SHA-512"
        else ScramMechanism.SCRAM_SHA_256
    )
    admin = connect_admin(config, timeout_s, client_id=client_id)
    try:
        if users:
            upserts = [UserScramCredentialUpsertion(u, scram, p) for u, p in users.items()]
            failed = {u: e for u, e in admin.alter_user_scram_credentials(upserts).items() if e}
            if failed:
                raise TransportError(f"creating SCRAM users failed: {failed}")
        result = admin.create_acls([_acl(a) for a in acls])
        if result["failed"]:
            raise TransportError(f"creating ACLs failed: {result['failed'][:3]}")
        existing = set(admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        enforced = [
            ConfigResource(
                ConfigResourceType.TOPIC,
                t.name,
                {k: v for k, v in t.configs.items() if k in ENFORCED_ON_EXISTING},
            )
            for t in topics
            if t.name in existing and ENFORCED_ON_EXISTING & t.configs.keys()
        ]
        if enforced:
            admin.alter_configs(enforced, incremental=True)
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [
                        NewTopic(t.name, t.partitions, t.replication, topic_configs=t.configs)
                        for t in missing
                    ]
                )
        admin.wait_for_topics([t.name for t in topics], timeout_ms=int(timeout_s * 1000))
    except KafkaError as exc:
        raise TransportError(f"provisioning failed: {type(exc).__name__}: {exc}") from exc
    finally:
        admin.close()
    return ProvisionResult(sorted(users), [t.name for t in missing], len(acls))


def topics_seen(config: Mapping[str, Any], *, client_id: str = "corredor-init-kafka") -> set[str]:
    """The topics a fresh admin client sees, or none when no broker answers
    (the caller polls: a broker that just started may not have caught up)."""
    try:
        admin = KafkaAdminClient(client_id=client_id, **config)
    except KafkaError:
        return set()
    try:
        return set(admin.list_topics())
    except KafkaError:
        return set()
    finally:
        admin.close()
