"""The one local cluster that `corredor kafka up` manages, across processes.

`up` starts a cluster (or reuses the running one) and records it in a state
file under the cache directory; `status` and `down` act only on what that file
describes, so they never touch a broker something else started.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from node.devkafka.cluster import (
    BROKER_READY_WAIT_S,
    NodeStatus,
    cluster_status,
    start_cluster,
    stop_cluster,
)
from node.devkafka.jars import ensure_jars
from node.devkafka.secure import DEFAULT_SHARED_TOPIC, RCM_COUNTRIES
from node.devkafka.state import ClusterInfo, load_state, remove_state, save_state
from node.errors import KafkaSetupError

Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def running_cluster(state_dir: Path) -> ClusterInfo | None:
    """The recorded cluster if at least one of its brokers is alive."""
    info = load_state(state_dir)
    if info is None:
        return None
    if any(s.alive for s in cluster_status(info)):
        return info
    return None


def local_up(
    state_dir: Path,
    pom: Path,
    *,
    nodes: int = 1,
    timeout: float = BROKER_READY_WAIT_S,
    echo: Echo = _quiet,
    secure: bool = False,
    members: Sequence[str] = RCM_COUNTRIES,
    shared_topic: str = DEFAULT_SHARED_TOPIC,
) -> tuple[ClusterInfo, bool]:
    """Start the local cluster, or reuse the one running. Returns (info, started).

    ``secure`` starts it with SASL_SSL, SCRAM users for ``members``, the
    Secretariat and the admin, and the federation's ACLs (node.devkafka.secure).
    """
    info = load_state(state_dir)
    if info is not None:
        if any(s.alive for s in cluster_status(info)):
            if len(info.nodes) != nodes or info.secure != secure:
                kind = "secure " if info.secure else ""
                raise KafkaSetupError(
                    f"a {len(info.nodes)}-node {kind}local Kafka is already running at "
                    f"{info.bootstrap}; run `corredor kafka down` first"
                )
            return info, False
        # Left over from a crash or reboot: nothing of it runs. Its data lives in
        # our own cluster directory (removed below), never at a path taken from
        # the state file, which could have been edited.
        remove_state(info)
    cluster_dir = state_dir / "cluster"
    shutil.rmtree(cluster_dir, ignore_errors=True)
    jars = ensure_jars(pom, state_dir, echo)
    mode = "secure (SASL_SSL, SCRAM-SHA-512, ACLs) " if secure else ""
    echo(f"starting a {nodes}-node {mode}Kafka cluster on 127.0.0.1…")
    info = start_cluster(
        nodes,
        base_dir=cluster_dir,
        jars=jars,
        timeout=timeout,
        secure=secure,
        members=members,
        shared_topic=shared_topic,
    )
    save_state(info, state_dir)
    return info, True


def local_status(state_dir: Path) -> tuple[ClusterInfo, list[NodeStatus]] | None:
    info = load_state(state_dir)
    if info is None:
        return None
    return info, cluster_status(info)


def local_down(state_dir: Path) -> ClusterInfo | None:
    """Stop the recorded cluster and delete its data. None if none was recorded."""
    info = load_state(state_dir)
    if info is None:
        return None
    stop_cluster(info, remove_data=True)
    return info


def home_settings(info: ClusterInfo, user: str) -> dict[str, str | None]:
    """The ``kafka:`` settings of a home that connects to this cluster as ``user``:
    paths to the password file and the CA, never the password itself. Every
    security key is set, so settings from an earlier cluster do not linger."""
    sec = info.security
    if sec is None:
        return {
            "bootstrap": info.bootstrap,
            "security_protocol": "PLAINTEXT",
            "username": None,
            "password_file": None,
            "password_env": None,
            "ssl_cafile": None,
        }
    return {
        "bootstrap": info.bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": sec.mechanism,
        "username": user,
        "password_file": str(sec.password_file(user)),
        "password_env": None,
        "ssl_cafile": str(sec.ca_file),
        "topic": sec.shared_topic,
    }
