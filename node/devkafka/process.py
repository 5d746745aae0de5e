"""Broker JVM processes: format, launch, recognise, signal and wait for them.

A pid in a state file may have been reused by an unrelated process since the
broker died. Before any signal, ``/proc/<pid>/cmdline`` must show ``kafka.Kafka``
and this node's own properties file, so nothing else is ever killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from node.devkafka.state import NodeInfo
from node.errors import KafkaSetupError
from node.transport.credentials import MASK

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"

#: Modest heap: two cores, and fault tests run three brokers next to the suite's one.
BROKER_JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)
TOOL_JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

#: Children started by this interpreter, so they can be reaped (no zombies, and
#: no "subprocess still running" ResourceWarning when a handle is collected).
_children: dict[int, subprocess.Popen[bytes]] = {}


def classpath(jars: Path) -> str:
    # The JVM expands the wildcard itself; no shell is involved.
    return f"{jars.resolve()}/*"


def log4j_config_file(node: NodeInfo) -> Path:
    return node.node_dir / "log4j2.properties"


def format_storage(
    java: str,
    jars: Path,
    cluster_id: str,
    nodes: Sequence[NodeInfo],
    *,
    scram_users: Mapping[str, str] | None = None,
) -> None:
    """Format every node's data dir with ``cluster_id``, in parallel JVMs.

    ``scram_users`` (name -> password) become SCRAM-SHA-512 credentials in the
    bootstrap metadata. They pass on the tool's command line, briefly visible to
    local users in the process list, so only the admin is added this way.
    """
    scram_args: list[str] = []
    for name, password in (scram_users or {}).items():
        scram_args += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
    running: list[tuple[NodeInfo, subprocess.Popen[str]]] = []
    for node in nodes:
        cmd = [
            java,
            *TOOL_JVM_OPTS,
            f"-Dlog4j2.configurationFile={log4j_config_file(node)}",
            "-cp",
            classpath(jars),
            STORAGE_TOOL_MAIN,
            "format",
            "-t",
            cluster_id,
            "-c",
            str(node.props_file),
            *scram_args,
        ]
        try:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        except OSError as exc:
            _reap_all(p for _, p in running)
            # str(exc) names the executable, never the arguments (which hold passwords).
            raise KafkaSetupError(f"could not run the Kafka storage tool: {exc}") from exc
        running.append((node, proc))
    failures = []
    for node, proc in running:
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        if proc.returncode != 0:
            for password in (scram_users or {}).values():
                output = output.replace(password, MASK)  # the tool may echo its arguments
            failures.append(f"node {node.node_id} (exit {proc.returncode}):\n{output.strip()}")
    if failures:
        raise KafkaSetupError("formatting the Kafka data dirs failed: " + "\n".join(failures))


def broker_command(java: str, jars: Path, node: NodeInfo) -> list[str]:
    return [
        java,
        *BROKER_JVM_OPTS,
        f"-Dkafka.logs.dir={node.log_file.parent}",
        f"-Dlog4j2.configurationFile={log4j_config_file(node)}",
        "-cp",
        classpath(jars),
        BROKER_MAIN,
        str(node.props_file),
    ]


def launch_broker(java: str, jars: Path, node: NodeInfo) -> int:
    """Start one broker in its own session (it outlives the CLI); return its pid."""
    node.console_file.parent.mkdir(parents=True, exist_ok=True)
    with node.console_file.open("ab") as console:
        try:
            proc = subprocess.Popen(
                broker_command(java, jars, node),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=node.node_dir,
                start_new_session=True,
            )
        except OSError as exc:
            raise KafkaSetupError(f"could not start the Kafka broker: {exc}") from exc
    _children[proc.pid] = proc
    return proc.pid


def is_running(node: NodeInfo) -> bool:
    """True while ``node.pid`` is alive and is still this node's broker."""
    child = _children.get(node.pid)
    if child is not None:
        # Our own unreaped child cannot have lost its pid to another process, and
        # /proc is no help here: cmdline reads empty while exec is still settling.
        if child.poll() is None:
            return True
        del _children[node.pid]  # reaped: the pid is free for reuse from here on
        return False
    try:
        raw = Path(f"/proc/{node.pid}/cmdline").read_bytes()
    except OSError:
        return False
    # A zombie has an empty cmdline, so it never matches.
    args = raw.decode(errors="replace").split("\0")
    return BROKER_MAIN in args and str(node.props_file) in args


def signal_node(node: NodeInfo, sig: int) -> bool:
    """Send ``sig`` if the pid is still ours. Returns whether it was sent."""
    if not is_running(node):
        return False
    try:
        os.kill(node.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_stopped(nodes: Iterable[NodeInfo], timeout: float) -> list[NodeInfo]:
    """Wait until none of ``nodes`` runs; return those still running at the deadline."""
    remaining = list(nodes)
    deadline = time.monotonic() + timeout
    while remaining:
        remaining = [n for n in remaining if is_running(n)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return remaining


def terminate(nodes: Sequence[NodeInfo], timeout: float) -> None:
    """SIGTERM (a clean, controlled shutdown), then SIGKILL whatever is left."""
    for node in nodes:
        signal_node(node, signal.SIGTERM)
    for node in wait_stopped(nodes, timeout):
        signal_node(node, signal.SIGKILL)
    wait_stopped(nodes, 10.0)


def log_tail(node: NodeInfo, lines: int = 25) -> str:
    """The last lines of the node's log and console output, for error messages."""
    parts = []
    for path in (node.log_file, node.console_file):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        tail = text.rstrip().splitlines()[-lines:]
        if tail:
            parts.append(f"--- {path} (last {len(tail)} lines) ---\n" + "\n".join(tail))
    return "\n".join(parts) or f"(node {node.node_id} wrote no log)"


def _reap_all(procs: Iterable[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()
