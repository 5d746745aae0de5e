"""A real Apache Kafka 4.4 broker on loopback, run from jars fetched with Maven.

For development and tests on machines without Docker or a Kafka tarball:

    jars      fetch the broker's classpath once (``ensure_jars``)
    properties  server.properties / log4j2 config of a KRaft node
    cluster   start, wait for, stop, kill and restart 1- or 3-node clusters
    state     ``ClusterInfo`` and its JSON state file
    local     ``LocalKafka``, the context-manager form used by the test fixtures

``python -m node.devkafka fetch|up|down|status`` drives it from a shell.
"""

from node.devkafka.cluster import (
    NodeStatus,
    cluster_status,
    kill_broker,
    restart_broker,
    start_cluster,
    stop_cluster,
    wait_for_brokers,
)
from node.devkafka.jars import MIN_JAVA, ensure_jars, find_java
from node.devkafka.local import LocalKafka
from node.devkafka.properties import server_properties
from node.devkafka.state import STATE_FILE, ClusterInfo, NodeInfo, load_state, save_state

__all__ = [
    "MIN_JAVA",
    "STATE_FILE",
    "ClusterInfo",
    "LocalKafka",
    "NodeInfo",
    "NodeStatus",
    "cluster",
    "cluster_status",
    "ensure_jars",
    "find_java",
    "jars",
    "kill_broker",
    "load_state",
    "local",
    "manage",
    "pki",
    "process",
    "properties",
    "restart_broker",
    "save_state",
    "secure",
    "server_properties",
    "start_cluster",
    "state",
    "stop_cluster",
    "tools",
    "wait_for_brokers",
]
