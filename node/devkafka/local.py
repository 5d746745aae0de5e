"""``LocalKafka``: a local cluster for the length of a ``with`` block."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from node.devkafka.cluster import (
    BROKER_READY_WAIT_S,
    NodeStatus,
    cluster_status,
    kill_broker,
    restart_broker,
    start_cluster,
    stop_cluster,
)
from node.devkafka.secure import DEFAULT_SHARED_TOPIC, RCM_COUNTRIES
from node.devkafka.state import ClusterInfo
from node.errors import KafkaSetupError


class LocalKafka:
    """Start a 1- or 3-node cluster on entry, stop it (and clean up) on exit.

    ``jars`` comes from :func:`node.devkafka.ensure_jars`. Without ``base_dir`` the
    nodes live in a temporary directory removed on exit; with one, the node
    directories (and their logs) are kept for inspection. Nothing happens in the
    constructor. ``secure`` starts it with SASL_SSL, SCRAM users and the
    federation's ACLs (node.devkafka.secure); ``kafka.info.client_config(user)``
    then gives a client's settings. ``broker_properties`` are added to every
    node's server.properties (tests: tiny segments, fast retention checks)::

        with LocalKafka(3, jars=jars) as kafka:
            kafka.kill_broker(2)
            ...
            kafka.restart_broker(2)
    """

    def __init__(
        self,
        nodes: int = 1,
        *,
        jars: Path,
        base_dir: Path | None = None,
        timeout: float = BROKER_READY_WAIT_S,
        stop_timeout: float = 30.0,
        secure: bool = False,
        members: Sequence[str] = RCM_COUNTRIES,
        shared_topic: str = DEFAULT_SHARED_TOPIC,
        broker_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.nodes = nodes
        self.secure = secure
        self.members = tuple(members)
        self.shared_topic = shared_topic
        self.broker_properties = dict(broker_properties or {})
        self.jars = jars
        self.base_dir = base_dir
        self.timeout = timeout
        self.stop_timeout = stop_timeout
        self._info: ClusterInfo | None = None
        self._tmp: Path | None = None

    @property
    def info(self) -> ClusterInfo:
        if self._info is None:
            raise KafkaSetupError("the local Kafka is not started")
        return self._info

    @property
    def bootstrap(self) -> str:
        return self.info.bootstrap

    def start(self) -> ClusterInfo:
        if self._info is not None:
            return self._info
        base = self.base_dir
        if base is None:
            self._tmp = base = Path(tempfile.mkdtemp(prefix="corredor-kafka-"))
        try:
            self._info = start_cluster(
                self.nodes,
                base_dir=base,
                jars=self.jars,
                timeout=self.timeout,
                secure=self.secure,
                members=self.members,
                shared_topic=self.shared_topic,
                broker_properties=self.broker_properties,
            )
        except BaseException:
            self._remove_tmp()
            raise
        return self._info

    def stop(self) -> None:
        info, self._info = self._info, None
        try:
            if info is not None:
                stop_cluster(info, self.stop_timeout)
        finally:
            self._remove_tmp()

    def status(self) -> list[NodeStatus]:
        return cluster_status(self.info)

    def kill_broker(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        kill_broker(self.info, node_id, sig)

    def restart_broker(self, node_id: int) -> None:
        restart_broker(self.info, node_id, timeout=self.timeout)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
