"""Start, watch and stop a local KRaft cluster of one or three nodes.

Typical use (the CLI and the test harness do this)::

    jars = ensure_jars(kafka_pom(), kafka_dir())
    info = start_cluster(3, base_dir=kafka_dir() / "cluster", jars=jars)
    save_state(info, kafka_dir())
    ...
    stop_cluster(load_state(kafka_dir()))
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import socket
import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

from node.devkafka import process
from node.devkafka.jars import find_java
from node.devkafka.pki import write_private
from node.devkafka.properties import (
    LOOPBACK,
    SUPPORTED_SIZES,
    ListenerSecurity,
    NodeAddress,
    log4j2_properties,
    new_cluster_id,
    render_properties,
    server_properties,
)
from node.devkafka.secure import (
    CONTROLLER_USER,
    DEFAULT_SHARED_TOPIC,
    RCM_COUNTRIES,
    controller_password,
    prepare_security,
    provision,
)
from node.devkafka.state import ClusterInfo, NodeInfo, SecurityInfo, remove_state, save_state
from node.errors import KafkaSetupError
from node.transport.health import live_brokers

log = logging.getLogger(__name__)

#: How long a start waits for its brokers to answer. Generous: the wait ends as
#: soon as every broker is in the metadata (or fails at once if a JVM exits),
#: and a JVM starting on a busy 2-core machine can take minutes.
BROKER_READY_WAIT_S = 300.0

#: Per-attempt client timeouts while polling for readiness: short, so the
#: overall deadline is what bounds the wait.
_PROBE_TIMEOUT_MS = 2000


class NodeStatus(NamedTuple):
    node_id: int
    pid: int
    alive: bool
    port: int


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together so none repeats)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def start_cluster(
    nodes: int = 1,
    *,
    base_dir: Path,
    jars: Path,
    timeout: float = BROKER_READY_WAIT_S,
    secure: bool = False,
    members: Sequence[str] = RCM_COUNTRIES,
    shared_topic: str = DEFAULT_SHARED_TOPIC,
    broker_properties: Mapping[str, str] | None = None,
) -> ClusterInfo:
    """Format and start ``nodes`` (1 or 3) brokers under ``base_dir``; wait until ready.

    ``broker_properties`` are added to every node's server.properties (tests
    use it for tiny segments and fast retention checks).

    Each node lives in ``base_dir/node-<id>``, which must not hold a node already.
    Ready means a client sees all ``nodes`` brokers in the cluster metadata. On
    failure or timeout everything started is killed and KafkaSetupError carries
    the broker log's tail.

    ``secure``: SASL_SSL with SCRAM-SHA-512 and ACLs (see node.devkafka.secure):
    a CA and passwords under ``base_dir/security``, one SCRAM user per country in
    ``members`` plus the Secretariat and the admin, the shared, control and
    picture topics created, the federation's ACLs in place before this returns.
    """
    if nodes not in SUPPORTED_SIZES:
        raise KafkaSetupError(f"a local cluster has 1 or 3 nodes, not {nodes}")
    java = find_java()
    base_dir = base_dir.resolve()
    jars = jars.resolve()
    if not any(jars.glob("kafka_*.jar")):
        raise KafkaSetupError(f"no Kafka broker jar in {jars}; fetch the jars first")
    ports = free_ports(2 * nodes)
    voters = [NodeAddress(i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(nodes)]
    cluster_id = new_cluster_id()
    for address in voters:
        _check_free(base_dir, address)
    security = (
        prepare_security(base_dir, members=members, shared_topic=shared_topic) if secure else None
    )
    listener = _listener_security(security)
    brokers = [
        _prepare_node(base_dir, address, voters, listener, broker_properties or {})
        for address in voters
    ]
    info = ClusterInfo(
        cluster_id=cluster_id,
        bootstrap=_bootstrap_of(brokers),
        java=java,
        jars=jars,
        base_dir=base_dir,
        nodes=brokers,
        secure=secure,
        security=security,
    )
    admin = {security.admin: security.password(security.admin)} if security else None
    process.format_storage(java, jars, cluster_id, brokers, scram_users=admin)
    try:
        for node in brokers:
            node.pid = process.launch_broker(java, jars, node)
        wait_for_brokers(info, {n.node_id for n in brokers}, timeout=timeout)
        if security is not None:
            provision(info)
    except BaseException:
        # Includes Ctrl-C: never leave half a cluster running unrecorded.
        process.terminate([n for n in brokers if n.pid], timeout=5.0)
        raise
    log.info("local Kafka %s up at %s", cluster_id, info.bootstrap)
    return info


def _check_free(base_dir: Path, address: NodeAddress) -> None:
    node_dir = base_dir / f"node-{address.node_id}"
    if node_dir.exists() and any(node_dir.iterdir()):
        raise KafkaSetupError(
            f"{node_dir} already holds a Kafka node; stop it and remove the directory first"
        )


def _listener_security(security: SecurityInfo | None) -> ListenerSecurity | None:
    if security is None:
        return None
    return ListenerSecurity(
        keystore=security.keystore,
        truststore=security.ca_file,
        admin_user=security.admin,
        admin_password=security.password(security.admin),
        controller_user=CONTROLLER_USER,
        controller_password=controller_password(security),
    )


def _prepare_node(
    base_dir: Path,
    address: NodeAddress,
    voters: Sequence[NodeAddress],
    security: ListenerSecurity | None,
    extra: Mapping[str, str],
) -> NodeInfo:
    node_dir = base_dir / f"node-{address.node_id}"
    node = NodeInfo(
        node_id=address.node_id,
        pid=0,
        port=address.port,
        controller_port=address.controller_port,
        node_dir=node_dir,
        data_dir=node_dir / "data",
        props_file=node_dir / "server.properties",
        log_file=node_dir / "logs" / "server.log",
        console_file=node_dir / "logs" / "console.log",
    )
    node.log_file.parent.mkdir(parents=True, exist_ok=True)
    node.data_dir.mkdir(parents=True, exist_ok=True)
    props = server_properties(
        address, voters, node.data_dir, secure=security is not None, security=security
    )
    props.update(extra)
    # Mode 0600 always: a secure node's file holds the admin and controller passwords.
    write_private(node.props_file, render_properties(props).encode("utf-8"))
    process.log4j_config_file(node).write_text(log4j2_properties(node.log_file), encoding="utf-8")
    return node


def wait_for_brokers(info: ClusterInfo, node_ids: Collection[int], *, timeout: float) -> None:
    """Block until the cluster metadata lists every broker in ``node_ids``, unfenced.

    Asks the brokers themselves (only the awaited ones), with a real metadata
    request rather than a log line. Fails fast if an awaited JVM exits.
    """
    awaited = [info.node(i) for i in node_ids]
    bootstrap = _bootstrap_of(awaited)
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while True:
        for node in awaited:
            if not process.is_running(node):
                raise KafkaSetupError(
                    f"Kafka node {node.node_id} exited while starting\n{process.log_tail(node)}"
                )
        listening = _listening(awaited)
        if listening:
            seen = _visible_brokers(info, _bootstrap_of(listening))
        if set(node_ids) <= seen:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    missing = sorted(set(node_ids) - seen)
    tails = "\n".join(process.log_tail(info.node(i)) for i in missing)
    raise KafkaSetupError(
        f"Kafka at {bootstrap} not ready after {timeout:.0f}s (brokers seen: "
        f"{sorted(seen) or 'none'}, missing: {missing})\n{tails}"
    )


def _bootstrap_of(nodes: Sequence[NodeInfo]) -> str:
    return ",".join(f"{LOOPBACK}:{n.port}" for n in nodes)


def _listening(nodes: Sequence[NodeInfo]) -> list[NodeInfo]:
    """The nodes whose client port accepts connections already.

    Probing with a plain socket first keeps kafka-python away from refused
    connections, whose sockets it leaves unclosed (ResourceWarnings in tests).
    """
    open_nodes = []
    for node in nodes:
        try:
            with socket.create_connection((LOOPBACK, node.port), timeout=1.0):
                open_nodes.append(node)
        except OSError:
            continue
    return open_nodes


def _visible_brokers(info: ClusterInfo, bootstrap: str) -> set[int]:
    config = info.client_config()
    config.update(
        bootstrap_servers=bootstrap,
        client_id="corredor-devkafka-probe",
        request_timeout_ms=_PROBE_TIMEOUT_MS,
        bootstrap_timeout_ms=_PROBE_TIMEOUT_MS,
    )
    return live_brokers(config)


def stop_cluster(info: ClusterInfo, timeout: float = 30.0, *, remove_data: bool = False) -> None:
    """Stop every node still running as we started it; remove the state file.

    SIGTERM first (controlled shutdown), SIGKILL after ``timeout``. With
    ``remove_data`` the node directories (data and logs) are deleted too, and a
    secure cluster's CA and credentials.
    """
    process.terminate(info.nodes, timeout)
    still = [n.node_id for n in info.nodes if process.is_running(n)]
    if still:
        raise KafkaSetupError(f"Kafka nodes {still} did not stop even after SIGKILL")
    remove_state(info)
    if remove_data:
        for node in info.nodes:
            shutil.rmtree(node.node_dir, ignore_errors=True)
        if info.security is not None:
            # The CA key and the passwords are worthless once the cluster is gone.
            shutil.rmtree(info.base_dir / "security", ignore_errors=True)
        with contextlib.suppress(OSError):
            info.base_dir.rmdir()  # only if nothing else was put there


def cluster_status(info: ClusterInfo) -> list[NodeStatus]:
    """(node_id, pid, alive, port) per node; alive only if the pid is still our broker."""
    return [NodeStatus(n.node_id, n.pid, process.is_running(n), n.port) for n in info.nodes]


def kill_broker(
    info: ClusterInfo, node_id: int, sig: int = signal.SIGKILL, *, timeout: float = 30.0
) -> None:
    """Send ``sig`` to one node (default SIGKILL, a crash) and wait until it is gone.

    SIGSTOP and SIGCONT (a hung, then resumed, broker) return at once instead.
    """
    node = info.node(node_id)
    if not process.signal_node(node, sig):
        raise KafkaSetupError(f"Kafka node {node_id} (pid {node.pid}) is not running")
    if sig in (signal.SIGSTOP, signal.SIGCONT):
        return
    if process.wait_stopped([node], timeout):
        raise KafkaSetupError(f"Kafka node {node_id} still runs {timeout:.0f}s after signal {sig}")


def restart_broker(
    info: ClusterInfo, node_id: int, *, timeout: float = BROKER_READY_WAIT_S
) -> None:
    """Start a node again from its existing properties and data (no reformat).

    Stops it first if it still runs, waits until it is back in the metadata, and
    updates ``info`` (and its state file, if it has one) with the new pid.
    """
    node = info.node(node_id)
    if process.is_running(node):
        process.terminate([node], timeout=30.0)
    node.pid = process.launch_broker(info.java, info.jars, node)
    if info.state_file is not None:
        save_state(info, info.state_file.parent)
    try:
        wait_for_brokers(info, [node_id], timeout=timeout)
    except BaseException:
        process.terminate([node], timeout=5.0)
        raise
