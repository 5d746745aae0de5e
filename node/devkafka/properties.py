"""The files a local KRaft node runs from: server.properties and a log4j2 config.

Every node is a combined broker + controller with a static quorum on loopback.
One node gets replication 1; three nodes get replication 3 with min ISR 2 and
short heartbeat/session timeouts, so a killed broker is fenced within seconds.

With ``secure=True`` (:func:`security_properties`) the client listener becomes
SASL_SSL with SCRAM-SHA-512 and PEM key/trust stores, inter-broker traffic uses
it as the admin, the controller listener stays on loopback with SASL/PLAIN, and
the StandardAuthorizer denies everything no ACL allows. The client side is
``ClusterInfo.client_config()``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from node.errors import KafkaSetupError

LOOPBACK = "127.0.0.1"

#: Cluster sizes the harness knows how to configure.
SUPPORTED_SIZES = (1, 3)


class ListenerSecurity(NamedTuple):
    """What a secure node's server.properties needs (see node.devkafka.secure)."""

    keystore: Path  # PKCS#8 key + certificate chain, PEM
    truststore: Path  # the CA certificate, PEM
    admin_user: str
    admin_password: str
    controller_user: str
    controller_password: str


class NodeAddress(NamedTuple):
    """Where one node listens: clients on ``port``, the quorum on ``controller_port``."""

    node_id: int
    port: int
    controller_port: int


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, never starting with '-'."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not value.startswith("-"):
            return value


def quorum_voters(voters: Sequence[NodeAddress]) -> str:
    return ",".join(f"{v.node_id}@{LOOPBACK}:{v.controller_port}" for v in voters)


def server_properties(
    node: NodeAddress,
    voters: Sequence[NodeAddress],
    data_dir: Path,
    *,
    secure: bool = False,
    security: ListenerSecurity | None = None,
) -> dict[str, str]:
    """The broker configuration of one node of a cluster of ``len(voters)`` nodes.

    ``secure`` needs ``security``: the TLS files and the two service passwords.
    """
    size = len(voters)
    if size not in SUPPORTED_SIZES:
        raise KafkaSetupError(f"a local cluster has 1 or 3 nodes, not {size}")
    if node not in voters:
        raise KafkaSetupError(f"node {node.node_id} is not one of the quorum voters")
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": quorum_voters(voters),
        "listeners": (
            f"PLAINTEXT://{LOOPBACK}:{node.port},CONTROLLER://{LOOPBACK}:{node.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{node.port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir.resolve()),
        "offsets.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    props.update(replication_properties(size))
    if secure:
        if security is None:
            raise KafkaSetupError("secure mode needs its TLS files and passwords (security=)")
        props.update(security_properties(node, security))
    return props


def replication_properties(size: int) -> dict[str, str]:
    """Internal-topic replication that fits the cluster; fast fencing for three nodes."""
    replicas = "1" if size == 1 else "3"
    min_isr = "1" if size == 1 else "2"
    props = {
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
    }
    if size > 1:
        props.update(
            {
                "default.replication.factor": replicas,
                "min.insync.replicas": min_isr,
                # A killed broker is fenced (and leaves the ISR) in ~3 s, not 9 s.
                "broker.heartbeat.interval.ms": "500",
                "broker.session.timeout.ms": "3000",
            }
        )
    return props


def _jaas(module: str, **options: str) -> str:
    # Values are generated (URL-safe) or fixed names: nothing to escape.
    settings = " ".join(f'{key}="{value}"' for key, value in options.items())
    return f"{module} required {settings};"


def security_properties(node: NodeAddress, security: ListenerSecurity) -> dict[str, str]:
    """SASL_SSL (SCRAM-SHA-512) for clients and brokers, SASL/PLAIN for the quorum.

    The controller listener cannot use SCRAM (its credentials live in the very
    metadata the quorum serves), so it authenticates with PLAIN against a
    password in this file; it binds to 127.0.0.1 only. Both service users are
    super users; every other principal gets only what an ACL allows.
    """
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    controller_password = security.controller_password
    return {
        "listeners": (
            f"SASL_SSL://{LOOPBACK}:{node.port},CONTROLLER://{LOOPBACK}:{node.controller_port}"
        ),
        "advertised.listeners": f"SASL_SSL://{LOOPBACK}:{node.port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": _jaas(
            scram, username=security.admin_user, password=security.admin_password
        ),
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": _jaas(
            plain,
            username=security.controller_user,
            password=controller_password,
            **{f"user_{security.controller_user}": controller_password},
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(security.keystore.resolve()),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.truststore.resolve()),
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.client.auth": "none",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{security.admin_user};User:{security.controller_user}",
        "allow.everyone.if.no.acl.found": "false",
    }


def render_properties(props: Mapping[str, str]) -> str:
    """Java properties text. Values here never hold '\\', newlines or leading blanks."""
    lines = ["# Written by node.devkafka; regenerated on every `up`."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def parse_properties(text: str) -> dict[str, str]:
    """Read back what :func:`render_properties` writes (no continuation lines)."""
    props: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        props[key.strip()] = value.strip()
    return props


def log4j2_properties(log_file: Path) -> str:
    """A log4j2 config sending the broker's INFO log to one size-capped file.

    Properties format, because YAML would need jackson-dataformat-yaml on the
    classpath and the broker logs nothing at all without a working config.
    """
    path = log_file.resolve()
    return "\n".join(
        [
            "status = warn",
            "name = corredor-devkafka",
            # Kafka logs its own shutdown; log4j's hook would stop logging halfway.
            "shutdownHook = disable",
            "appender.file.type = RollingFile",
            "appender.file.name = FILE",
            f"appender.file.fileName = {path}",
            f"appender.file.filePattern = {path}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 2",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
            # Per-request and state-change chatter drowns the useful lines.
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "",
        ]
    )
