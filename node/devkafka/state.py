"""What a running local cluster is: ports, pids and paths, saved as JSON.

`up` and `down` run in different processes, so the cluster is described by a
state file rather than by live handles. The file also lets ``stop_cluster``
prove that a pid is still the broker it started before signalling it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from node.errors import KafkaSetupError
from node.transport.credentials import security_settings

#: File name of the state of `corredor kafka up` inside its state directory.
STATE_FILE = "cluster.json"


class NodeInfo(BaseModel):
    """One combined broker + controller process."""

    model_config = ConfigDict(extra="forbid")

    node_id: int
    pid: int
    port: int
    controller_port: int
    node_dir: Path
    data_dir: Path
    props_file: Path
    log_file: Path
    #: The JVM's own stdout/stderr: crashes before logging starts end up here.
    console_file: Path


class SecurityInfo(BaseModel):
    """Where a secure cluster's TLS files and generated credentials live.

    Only paths are recorded: passwords stay in their own mode-0600 files
    (``credentials_dir/<user>.password``) and are read when a client needs them.
    """

    model_config = ConfigDict(extra="forbid")

    ca_file: Path
    keystore: Path
    credentials_dir: Path
    #: SCRAM-SHA-512 users: the admin, the Secretariat and one per member country.
    admin: str
    secretariat: str
    members: list[str]
    shared_topic: str
    control_topic: str
    picture_topic: str
    mechanism: str = "SCRAM-SHA-512"

    @property
    def users(self) -> list[str]:
        return [self.admin, self.secretariat, *self.members]

    def password_file(self, user: str) -> Path:
        if user not in self.users:
            known = ", ".join(self.users)
            raise KafkaSetupError(f"no Kafka user {user!r} on this cluster (users: {known})")
        return self.credentials_dir / f"{user}.password"

    def password(self, user: str) -> str:
        path = self.password_file(user)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KafkaSetupError(f"cannot read the credentials file {path}: {exc}") from exc


class ClusterInfo(BaseModel):
    """A local cluster started by :func:`node.devkafka.start_cluster`."""

    model_config = ConfigDict(extra="forbid")

    cluster_id: str
    bootstrap: str
    java: str
    jars: Path
    base_dir: Path
    nodes: list[NodeInfo]
    #: SASL/SCRAM-SHA-512 over TLS, with ACLs (``corredor kafka up --secure``).
    secure: bool = False
    security: SecurityInfo | None = None
    #: Where this info was saved or loaded from; ``stop_cluster`` removes it.
    state_file: Path | None = None

    def node(self, node_id: int) -> NodeInfo:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        known = ", ".join(str(n.node_id) for n in self.nodes)
        raise KafkaSetupError(f"no node {node_id} in this cluster (nodes: {known})")

    def client_config(self, user: str | None = None) -> dict[str, Any]:
        """kafka-python settings a client of this cluster needs.

        On a secure cluster: SASL_SSL as ``user`` (default the admin), the
        password read from its file (a value that never prints itself) and the
        CA to verify the brokers with. ``user`` is refused on a plain cluster.
        """
        config: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        if self.security is None:
            if user is not None:
                raise KafkaSetupError("this local Kafka is not secure: it has no users")
            return config
        sec = self.security
        name = user or sec.admin
        config.update(
            security_settings(
                protocol="SASL_SSL",
                mechanism=sec.mechanism,
                username=name,
                password=sec.password(name),
                cafile=str(sec.ca_file),
            )
        )
        return config


def save_state(info: ClusterInfo, state_dir: Path) -> Path:
    """Write ``info`` to ``state_dir/cluster.json`` atomically; remember the path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / STATE_FILE
    info.state_file = path
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(info.model_dump_json(indent=2, exclude={"state_file"}), encoding="utf-8")
    tmp.replace(path)
    return path


def load_state(state_dir: Path) -> ClusterInfo | None:
    """The cluster saved in ``state_dir``, or None when nothing was saved there."""
    path = state_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KafkaSetupError(f"cannot read the local Kafka state {path}: {exc}") from exc
    try:
        info = ClusterInfo.model_validate_json(text)
    except ValidationError as exc:
        raise KafkaSetupError(
            f"the local Kafka state {path} is damaged; stop any broker by hand and "
            f"remove the file ({exc.error_count()} errors)"
        ) from exc
    info.state_file = path
    return info


def remove_state(info: ClusterInfo) -> None:
    if info.state_file is not None:
        info.state_file.unlink(missing_ok=True)
        info.state_file = None
