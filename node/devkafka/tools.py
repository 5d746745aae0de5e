"""Kafka's own command-line tools, run with a home's identity.

Operators know ``kafka-topics``, ``kafka-acls``, ``kafka-configs`` and
``kafka-console-consumer``; the broker jars (deploy/kafka/pom.xml) include
``kafka-tools``, so ``corredor kafka tool NAME ARGS...`` runs the tool's Java
main class on that classpath, the way Kafka's ``bin/*.sh`` scripts do.

On a SASL home the client settings go to the tool in a properties file
(``--command-config``) written with mode 0600 in a private temporary
directory and removed when the tool exits. The password is in that file only:
never on the command line (other users see ``ps``), never printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from node.devkafka.jars import find_java
from node.errors import KafkaSetupError
from node.transport.credentials import Redacted

#: Tool name (as in Kafka's bin/) -> Java main class, Kafka 4.4.
TOOLS: dict[str, str] = {
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-groups": "org.apache.kafka.tools.GroupsCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
}

#: Options by which a caller chooses the cluster or the client settings itself.
_OWN_BOOTSTRAP = ("--bootstrap-server", "--bootstrap-controller")
_OWN_CONFIG = ("--command-config",)

_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}

#: The tools' own log lines: warnings and errors on stderr, as bin/ scripts do.
_LOG4J2 = "\n".join(
    [
        "status = error",
        "appender.err.type = Console",
        "appender.err.name = STDERR",
        "appender.err.target = SYSTEM_ERR",
        "appender.err.layout.type = PatternLayout",
        "appender.err.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = WARN",
        "rootLogger.appenderRef.err.ref = STDERR",
        "",
    ]
)


def main_class(name: str) -> str:
    """The Java main class of a tool: ``kafka-topics``, ``kafka-topics.sh`` or ``topics``."""
    key = name.removesuffix(".sh")
    if not key.startswith("kafka-"):
        key = f"kafka-{key}"
    try:
        return TOOLS[key]
    except KeyError:
        known = ", ".join(sorted(TOOLS))
        raise KafkaSetupError(f"no Kafka tool {name!r}; known tools: {known}") from None


def _escape(value: str) -> str:
    """A value for a Java .properties file (read as ISO-8859-1, backslash escapes)."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\r\t\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[ch])
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else _surrogates(ch))
        else:
            out.append(ch)
    return "".join(out)


def _surrogates(ch: str) -> str:
    code = ord(ch) - 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_properties(security: Mapping[str, Any]) -> dict[str, str]:
    """Java client settings for a home's kafka-python ``security`` settings
    (``Home.kafka_security()``); empty for PLAINTEXT."""
    protocol = str(security.get("security_protocol", "PLAINTEXT"))
    if protocol == "PLAINTEXT":
        return {}
    props = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        mechanism = str(security["sasl_mechanism"])
        password = security["sasl_plain_password"]
        secret = password.reveal() if isinstance(password, Redacted) else str(password)
        props["sasl.mechanism"] = mechanism
        props["sasl.jaas.config"] = (
            f"{_LOGIN_MODULES[mechanism]} required "
            f"username={_jaas_quoted(str(security['sasl_plain_username']))} "
            f"password={_jaas_quoted(secret)};"
        )
    if protocol.endswith("SSL"):
        if security.get("ssl_cafile"):
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(security["ssl_cafile"])
        if security.get("ssl_check_hostname") is False:
            props["ssl.endpoint.identification.algorithm"] = ""
    return props


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)


def tool_command(
    name: str,
    args: Sequence[str],
    *,
    jars: Path,
    bootstrap: str,
    config_file: Path | None,
    log_config: Path,
    java: str,
) -> list[str]:
    """The ``java`` command line that runs a tool (no secret in it). The
    bootstrap and client-settings options come before ``args``: tools with
    subcommands (kafka-metadata-quorum) take them only there."""
    command = [
        java,
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        f"{jars}/*",
        main_class(name),
    ]
    if not any(a.split("=", 1)[0] in _OWN_BOOTSTRAP for a in args):
        command += ["--bootstrap-server", bootstrap]
    if config_file is not None:
        if any(a.split("=", 1)[0] in _OWN_CONFIG for a in args):
            raise KafkaSetupError(
                "this home's credentials go in --command-config already; leave it out "
                "(or run the tool from Kafka's own bin/ with your file)"
            )
        command += ["--command-config", str(config_file)]
    return [*command, *args]


def run_tool(
    name: str,
    args: Sequence[str],
    *,
    jars: Path,
    bootstrap: str,
    security: Mapping[str, Any],
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
) -> int:
    """Run a Kafka tool with these client settings; returns its exit code.

    Output goes where ``stdout``/``stderr`` say (the caller's by default)."""
    main_class(name)  # an unknown name fails before anything is written
    if not any(jars.glob("kafka-tools-*.jar")):
        raise KafkaSetupError(
            f"the Kafka jars in {jars} lack kafka-tools; fetch them again "
            "(`python -m node.devkafka fetch`)"
        )
    java = find_java()
    workdir = Path(tempfile.mkdtemp(prefix="corredor-kafka-tool-"))  # mode 0700
    try:
        log_config = workdir / "log4j2.properties"
        log_config.write_text(_LOG4J2, encoding="ascii")
        props = client_properties(security)
        config_file = None
        if props:
            config_file = workdir / "client.properties"
            lines = [f"{key}={_escape(value)}" for key, value in props.items()]
            _write_private(config_file, "\n".join(lines) + "\n")
        command = tool_command(
            name,
            args,
            jars=jars,
            bootstrap=bootstrap,
            config_file=config_file,
            log_config=log_config,
            java=java,
        )
        try:
            proc = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=stderr)
        except OSError as exc:
            raise KafkaSetupError(f"could not start {name}: {exc}") from exc
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the tool too (same process group): let it finish.
            return proc.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
