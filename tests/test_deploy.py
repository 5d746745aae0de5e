"""The deployment: docker-compose.yml, deploy/Dockerfile and the init steps.

No Docker engine runs here, so the compose stack is checked by reading it
against the code it runs: every command line parses with the real CLI, every
CORREDOR_* variable is one node.config reads, ports agree between listeners,
commands and published ports, stores live on named volumes and secrets come
from files. The test marked ``docker`` brings the stack up where an engine
answers. The init steps themselves run here against real brokers.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import click
import httpx
import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer

from node import config as node_config
from node.cli import main
from node.config import REPO_ROOT, KafkaSettings, load_home
from node.devkafka.state import ClusterInfo
from node.errors import ConfigError
from node.operator import deploy
from tests.conftest import secure_local_kafka
from tests.patience import PATIENCE_S

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
START = REPO_ROOT / "deploy" / "kafka" / "start.sh"
MAKE_SECRETS = REPO_ROOT / "deploy" / "make-secrets.sh"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _corredor(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if s.get("image") == "corredor:local"}


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "exec form: no shell between compose and corredor"
    return [str(c) for c in command]


def _parse(args: list[str]) -> click.Context:
    """Parse a compose command with the real CLI; raises on any unknown option,
    missing required option or bad value."""
    command: click.Command = main
    name = "corredor"
    rest = list(args)
    while isinstance(command, click.Group):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"no command {rest[0]!r}"
        command, name, rest = sub, rest[0], rest[1:]
    return command.make_context(name, rest)


def _option(args: list[str], option: str) -> str | None:
    for i, a in enumerate(args):
        if a == option:
            return args[i + 1]
        if a.startswith(option + "="):
            return a.split("=", 1)[1]
    return None


def _options(args: list[str], option: str) -> list[str]:
    out = []
    for i, a in enumerate(args):
        if a == option:
            out.append(args[i + 1])
        elif a.startswith(option + "="):
            out.append(a.split("=", 1)[1])
    return out


def _properties() -> dict[str, str]:
    text = START.read_text()
    body = text.split("<<PROPERTIES", 1)[1].split("\nPROPERTIES", 1)[0]
    props = {}
    for line in body.strip().splitlines():
        key, _, value = line.partition("=")
        props[key] = value
    return props


def _listeners(props: dict[str, str]) -> dict[str, int]:
    return {
        name: int(port) for name, port in re.findall(r"(\w+)://[^:,]*:(\d+)", props["listeners"])
    }


# -- services, images, commands ---------------------------------------------------


def test_the_stack_has_kafka_init_aggregator_report_and_two_nodes(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["kafka"]["image"] == "apache/kafka:4.4.0"
    nodes = {
        n: s for n, s in _corredor(services).items() if _command(s)[:2] == ["publish", "--follow"]
    }
    assert len(nodes) >= 2
    aggregator = [
        s for s in _corredor(services).values() if _command(s)[:2] == ["aggregate", "--follow"]
    ]
    assert len(aggregator) == 1
    assert _command(services["report"])[0] == "serve"
    assert _command(services["kafka-init"])[:2] == ["deploy", "init-kafka"]
    assert _command(services["pki-init"])[:2] == ["deploy", "init-pki"]
    for s in _corredor(services).values():
        assert s["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}


def test_every_corredor_command_parses_with_the_cli(services: dict[str, dict[str, Any]]) -> None:
    for name, service in _corredor(services).items():
        try:
            _parse(_command(service))
        except click.ClickException as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{name}: {exc.format_message()}")
    # Health checks run corredor too: doctor for the loops, /healthz for the report.
    for service in _corredor(services).values():
        test = service.get("healthcheck", {}).get("test")
        if test and test[1] == "corredor":
            _parse(test[2:])
        elif test:
            port = _option(_command(service), "--port")
            assert port is not None, service
            assert "/healthz" in " ".join(test) and port in " ".join(test)
    looping = [n for n, s in _corredor(services).items() if "--follow" in _command(s)]
    assert all(services[n]["healthcheck"]["test"][1:3] == ["corredor", "doctor"] for n in looping)
    # ...and the check can fail:
    with pytest.raises(click.NoSuchOption):
        _parse(["publish", "--follow", "--metrics-prot", "9464"])


def test_kafka_runs_kraft_with_scram_acls_and_tls_on_every_listener() -> None:
    props = _properties()
    assert props["process.roles"] == "broker,controller"
    assert props["controller.listener.names"] == "CONTROLLER"
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    assert set(protocols) == set(_listeners(props))
    assert all(p.startswith("SASL_") for p in protocols.values()), protocols
    assert protocols["CLIENT"] == "SASL_SSL" and protocols["INTERNAL"] == "SASL_SSL"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    assert (
        props["ssl.keystore.type"] == "PEM" and props["ssl.keystore.location"] == "/pki/broker.pem"
    )
    assert props["ssl.truststore.location"] == "/pki/ca.pem"
    assert props["auto.create.topics.enable"] == "false"
    # Passwords come from /run/secrets, never literally:
    assert 'password="${ADMIN_PASSWORD}"' in props["listener.name.internal.plain.sasl.jaas.config"]
    syntax = subprocess.run(["bash", "-n", str(START)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


# -- environment -----------------------------------------------------------------


def _config_env_names() -> set[str]:
    return {
        value
        for name, value in vars(node_config).items()
        if name.startswith("ENV_") and isinstance(value, str)
    }


def test_environment_names_match_the_code(services: dict[str, dict[str, Any]]) -> None:
    known = _config_env_names()
    assert {"CORREDOR_HOME", "CORREDOR_LOG_FORMAT"} <= known
    seen: set[str] = set()
    for name, service in services.items():
        for var in service.get("environment", {}):
            if var.startswith("CORREDOR_"):
                assert var in known, f"{name}: {var} is not read by node/config.py"
                seen.add(var)
            elif name == "kafka":
                # The broker's variables are read by our start script (or the JVM's).
                assert var == "KAFKA_HEAP_OPTS" or f"{var}" in START.read_text(), var
            else:
                pytest.fail(f"{name}: unexpected environment variable {var}")
    assert seen == {"CORREDOR_HOME", "CORREDOR_LOG_FORMAT", "CORREDOR_FOLDER_DB"}
    dockerfile_env = set(re.findall(r"\b(CORREDOR_[A-Z_]+)=", DOCKERFILE.read_text()))
    assert dockerfile_env and dockerfile_env <= known
    # The wrong name would be caught:
    assert "CORREDOR_BOOTSTRAP" not in known


def test_homes_are_where_corredor_home_points(services: dict[str, dict[str, Any]]) -> None:
    for name, service in _corredor(services).items():
        home = service["environment"]["CORREDOR_HOME"]
        if name in ("pki-init", "kafka-init"):
            continue
        mounts = [v.split(":") for v in service["volumes"]]
        assert any(home.startswith(m[1] + "/") for m in mounts), f"{name}: {home} on no volume"


# -- ports -----------------------------------------------------------------------


def test_ports_agree(services: dict[str, dict[str, Any]]) -> None:
    props = _listeners(_properties())
    assert props == {"CLIENT": 9092, "CONTROLLER": 9093, "INTERNAL": 9094}
    assert _properties()["controller.quorum.voters"] == "1@kafka:9093"
    advertised = _properties()["advertised.listeners"]
    assert (
        "CLIENT://${ADVERTISED_HOST}:9092" in advertised and "INTERNAL://kafka:9094" in advertised
    )
    assert services["kafka"]["hostname"] == "kafka"
    assert services["kafka"]["environment"]["KAFKA_ADVERTISED_HOST"] == "kafka"
    health = " ".join(services["kafka"]["healthcheck"]["test"])
    assert "/9092" in health and "/9094" in health
    assert _option(_command(services["kafka-init"]), "--bootstrap") == "kafka:9094"
    host_ports: list[str] = []
    for name, service in _corredor(services).items():
        args = _command(service)
        bootstrap = _option(args, "--bootstrap")
        if bootstrap and name != "kafka-init":
            assert bootstrap == "kafka:9092", name
        published = [p.rsplit(":", 2) for p in service.get("ports", [])]
        host_ports += [f"{ip}:{host}" for ip, host, _ in published]
        served = _option(args, "--metrics-port") or _option(args, "--port")
        if published:
            assert [c for _, _, c in published] == [served], name
            assert (
                _option(args, "--metrics-address") == "0.0.0.0"
                or _option(args, "--address") == "0.0.0.0"
            ), f"{name} must bind 0.0.0.0 inside its container"
            assert all(ip == "127.0.0.1" for ip, _, _ in published), "host ports on loopback"
    assert len(host_ports) == len(set(host_ports)), host_ports


# -- volumes and secrets ----------------------------------------------------------


def test_stores_on_named_volumes_and_only_read_only_binds(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    named = set(compose["volumes"])
    homes = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target, *mode = volume.split(":")
            mode = [m for m in mode if m != "ro"] if not source.startswith(("./", "/")) else mode
            if source.startswith(("./", "/")):
                assert mode == ["ro"], f"{name}: bind mount {volume} must be read-only"
            else:
                assert source in named, f"{name}: {source} is not a declared named volume"
            if target == "/var/lib/corredor":
                homes.add(source)
    assert {"kafka-data", "secretariat-home", "pan-home", "cri-home", "folder-state"} <= named
    assert homes == {"secretariat-home", "pan-home", "cri-home"}
    kafka_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["kafka"]["volumes"]}
    assert kafka_mounts["/var/lib/kafka/data"] == "kafka-data"


def test_the_report_service_runs_the_folder_read_only_without_keys(
    services: dict[str, dict[str, Any]],
) -> None:
    report = services["report"]
    args = _command(report)
    assert args[0] == "serve"
    _parse(args)
    home = report["environment"]["CORREDOR_HOME"]
    folder_db = report["environment"]["CORREDOR_FOLDER_DB"]
    mounts = {v.split(":")[1]: v.split(":") for v in report["volumes"]}
    # The Secretariat's home: read-only. The folder's own file: on its own volume,
    # outside the home, the only writable mount.
    assert mounts["/var/lib/corredor"] == ["secretariat-home", "/var/lib/corredor", "ro"]
    writable = [t for t, v in mounts.items() if v[2:] != ["ro"]]
    assert writable == ["/var/lib/corredor-folder"]
    assert folder_db.startswith("/var/lib/corredor-folder/")
    assert not folder_db.startswith(home)
    assert report["read_only"] is True  # the container's own file system too
    # The keys directory is covered by an empty tmpfs: no key file is visible.
    tmpfs = {t.split(":")[0]: t for t in report["tmpfs"]}
    assert f"{home}/keys" in tmpfs and "ro" in tmpfs[f"{home}/keys"]
    assert "secrets" not in report
    assert not any("key" in a.lower() for a in args)
    # The image creates the folder volume's mount point for the unprivileged user.
    assert "/var/lib/corredor-folder" in DOCKERFILE.read_text()


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume, short or long syntax."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
        else:
            source, target, *mode = volume.split(":")
            out.append((source, target, "ro" in ",".join(mode).split(",")))
    return out


def _report_mount_problems(compose: dict[str, Any]) -> list[str]:
    """What is wrong with the report's mounts: anything writable, and any key
    material it could read. Key material is the home's keys/ directory: a volume
    the report mounts carries the keys unless every service that uses that
    volume as its home puts <home>/keys on a volume of its own."""
    services = compose["services"]
    report = services["report"]
    home = report["environment"]["CORREDOR_HOME"]
    problems = []
    if not report.get("read_only"):
        problems.append("the report's own filesystem is writable")
    if report.get("secrets"):
        problems.append(f"the report gets secrets {report['secrets']}")
    mine = _mounts(report)
    for source, target, read_only in mine:
        # The one writable mount it may have: the folder's own state (users,
        # settings, the access log), a volume no other service mounts.
        if not read_only and target != "/var/lib/corredor-folder":
            problems.append(f"{source}:{target} is mounted read-write")
    for source, _target, _ in mine:
        for name, other in services.items():
            if name == "report":
                continue
            theirs = _mounts(other)
            if not any(s == source for s, _, _ in theirs):
                continue
            their_home = other.get("environment", {}).get("CORREDOR_HOME", home)
            keys = f"{their_home}/keys"
            if any(t == keys for _, t, _ in theirs):
                keys_volume = next(s for s, t, _ in theirs if t == keys)
                if keys_volume == source or any(s == keys_volume for s, _, _ in mine):
                    problems.append(f"the report mounts {name}'s keys volume {keys_volume}")
            elif any(keys.startswith(t.rstrip("/") + "/") for s, t, _ in theirs if s == source):
                problems.append(f"{name} keeps its keys ({keys}) on {source}, the report's")
    return problems


def test_the_report_mounts_the_home_read_only_and_no_key_material(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert _report_mount_problems(compose) == []
    # It still has what it reads: the home, whose corredor.yaml and
    # aggregator.db (with -wal and -shm beside it) are on that volume.
    home = services["report"]["environment"]["CORREDOR_HOME"]
    assert any(home.startswith(t + "/") for _, t, _ in _mounts(services["report"]))
    assert "/tmp" in services["report"]["tmpfs"]  # where serve's snapshots go
    # The TS's keys volume is the same one wherever the TS's home is used.
    keys = {
        name: s
        for name, svc in services.items()
        for s, t, _ in _mounts(svc)
        if t == "/var/lib/corredor/home/keys"
    }
    assert keys == {"secretariat-init": "secretariat-keys", "aggregator": "secretariat-keys"}
    assert "secretariat-keys" in compose["volumes"]
    # The image makes the keys directory, so a fresh keys volume is the
    # corredor user's and private (a volume on a path the image lacks is root's).
    dockerfile = DOCKERFILE.read_text()
    assert "mkdir -p /var/lib/corredor/home/keys" in dockerfile
    assert "chmod 0700 /var/lib/corredor/home /var/lib/corredor/home/keys" in dockerfile


def test_the_report_mount_check_catches_the_old_layout(compose: dict[str, Any]) -> None:
    """The check above can fail: the layout before (the whole home read-write,
    the keys on it) and a keys volume handed to the report are both caught."""
    old = json.loads(json.dumps(compose))
    old["services"]["report"]["volumes"] = ["secretariat-home:/var/lib/corredor"]
    del old["services"]["report"]["read_only"]
    for name in ("secretariat-init", "aggregator"):
        old["services"][name]["volumes"] = [
            v for v in old["services"][name]["volumes"] if "keys" not in v
        ]
    problems = _report_mount_problems(old)
    assert any("read-write" in p for p in problems)
    assert any("keeps its keys" in p for p in problems)
    assert any("filesystem is writable" in p for p in problems)
    leaked = json.loads(json.dumps(compose))
    leaked["services"]["report"]["volumes"].append(
        "secretariat-keys:/var/lib/corredor/home/keys:ro"
    )
    assert any("keys volume" in p for p in _report_mount_problems(leaked))


def test_compose_v2_is_required_where_users_install_it(compose: dict[str, Any]) -> None:
    """The file keeps the top-level ``name:`` (it pins the volume names), which
    Compose 1.x rejects; so the README and the runbook must say Compose v2 is
    needed and how to install it, and no instruction may use the v1 command."""
    assert compose["name"] == "corredor"
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    runbook = (REPO_ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    for text in (readme, runbook, COMPOSE.read_text(encoding="utf-8")):
        assert "Compose v2" in text
        assert "docker-compose-plugin" in text
    assert "docker compose version" in runbook
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "deploy").rglob("*.md"))]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"^\s*(sudo\s+)?docker-compose\s", line):
                pytest.fail(f"{path}:{number}: a v1 command: {line.strip()}")


def test_secrets_come_from_files(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = compose["secrets"]
    for secret in declared.values():
        assert set(secret) == {"file"} and secret["file"].startswith("./deploy/secrets/")
    made = set(re.findall(r"^make (\w+) (\d+)$", MAKE_SECRETS.read_text(), re.M))
    assert {n for n, _ in made} == set(declared)
    for name, service in services.items():
        env = service.get("environment", {})
        assert not [k for k in env if re.search("PASS|SECRET|TOKEN|KEY", k)], name
        args = [str(a) for a in service.get("command", [])]
        for value in (
            _options(args, "--password-file")
            + _options(args, "--admin-password-file")
            + [v.split("=", 1)[1] for v in _options(args, "--user")]
        ):
            assert value.startswith("/run/secrets/"), value
            assert value.removeprefix("/run/secrets/") in service["secrets"], (name, value)
    # Each node logs in as its own country, with its own secret only.
    for name, service in _corredor(services).items():
        user = _option(_command(service), "--username")
        if user and user != "secretariat":
            assert service["secrets"] == [f"kafka_{user.lower()}_password"], name
    users = {u.split("=")[0] for u in _options(_command(services["kafka-init"]), "--user")}
    countries = {_option(_command(s), "--country") for s in _corredor(services).values()} - {None}
    assert users == countries | {"secretariat"}
    enrolled = set(_options(_command(services["secretariat-init"]), "--enrol"))
    assert enrolled == countries
    # Secret files are owned by the user of the image that reads them.
    owners = dict(made)
    assert owners["kafka_admin_password"] == "1000"
    assert _option(_command(services["pki-init"]), "--owner") == "1000:1000"
    assert owners["kafka_pan_password"] == "10001"
    text = (REPO_ROOT / "deploy" / "secrets" / ".gitignore").read_text()
    assert "*" in text.splitlines()


def test_init_order(services: dict[str, dict[str, Any]]) -> None:
    def after(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name].get("depends_on", {}).items()}

    assert after("kafka") == {"pki-init": "service_completed_successfully"}
    assert after("kafka-init") == {"kafka": "service_healthy"}
    assert after("aggregator") == {"secretariat-init": "service_completed_successfully"}
    for name, service in _corredor(services).items():
        if _command(service)[:2] == ["publish", "--follow"]:
            (init,) = after(name)
            assert after(name)[init] == "service_completed_successfully"
            assert _command(services[init])[:2] == ["deploy", "init-home"]
            assert services[init]["volumes"][0] == service["volumes"][0]  # same home volume


def test_dockerfile_is_slim_non_root_with_the_corredor_entrypoint() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    users = [line for line in instructions if line.startswith("USER ")]
    assert users == ["USER 10001:10001"]
    last_run = max(i for i, line in enumerate(instructions) if line.startswith("RUN "))
    assert instructions.index(users[0]) > last_run  # nothing runs as root after it
    assert 'ENTRYPOINT ["corredor"]' in instructions
    copied = {line.split()[1] for line in instructions if line.startswith("COPY ")}
    assert {"node", "schemas", "policies", "pyproject.toml"} <= copied
    assert any("pip install" in line for line in instructions)
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "deploy/secrets" in ignored and ".venv" in ignored


# -- the init steps on real brokers -----------------------------------------------


@pytest.fixture(scope="module")
def secure(kafka_jars: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    with secure_local_kafka(kafka_jars, tmp_path_factory.mktemp("deploy-secure")) as info:
        yield info


class _InitKafkaArgs(TypedDict):
    """The keywords of deploy.init_kafka the test passes."""

    admin_user: str
    admin_password_file: Path
    users: dict[str, Path]
    admin_mechanism: str
    cafile: Path
    timeout_s: float


def test_init_kafka_adds_a_country_and_the_dead_letter_topic(
    secure: ClusterInfo, tmp_path: Path
) -> None:
    sec = secure.security
    assert sec is not None
    files = {}
    for user in ("secretariat", "PAN", "HND"):
        path = tmp_path / f"{user}.password"
        path.write_text(sec.password(user) if user != "HND" else f"hnd-{uuid.uuid4().hex}\n")
        path.chmod(0o600)
        files[user] = path
    args: _InitKafkaArgs = dict(
        admin_user="admin",
        admin_password_file=sec.password_file("admin"),
        users=files,
        admin_mechanism="SCRAM-SHA-512",
        cafile=sec.ca_file,
        timeout_s=PATIENCE_S,
    )
    # The local secure cluster makes the dead-letter topic itself; remove it so
    # that init-kafka has to create what a fresh production cluster lacks.
    admin = KafkaAdminClient(**secure.client_config("admin"))
    try:
        admin.delete_topics(["corredor.events.dlq"])
        deadline = time.monotonic() + PATIENCE_S
        while "corredor.events.dlq" in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        admin.close()
    first = deploy.init_kafka(secure.bootstrap, **args)
    assert "corredor.events.dlq" in first.topics_created
    again = deploy.init_kafka(secure.bootstrap, **args)
    assert again.topics_created == []  # idempotent
    hnd = secure.client_config("PAN")
    hnd.update(sasl_plain_username="HND", sasl_plain_password=files["HND"].read_text().strip())
    producer = KafkaProducer(**hnd)
    producer.send("corredor.events", b"x").get(30)  # the new country may write
    producer.close()
    ts = secure.client_config("secretariat")
    producer = KafkaProducer(**ts)
    producer.send("corredor.events.dlq", b"x").get(30)  # the Secretariat dead-letters
    producer.close()
    admin = KafkaAdminClient(**secure.client_config())
    try:
        assert {"corredor.events", "corredor.control", "corredor.picture"} <= set(
            admin.list_topics()
        )
    finally:
        admin.close()

    bad = tmp_path / "bad"
    bad.write_text("has,comma\n")
    with pytest.raises(ConfigError, match="comma"):
        deploy.init_kafka(secure.bootstrap, **(args | {"users": {**files, "GTM": bad}}))
    with pytest.raises(ConfigError, match="alpha-3"):
        deploy.init_kafka(secure.bootstrap, **(args | {"users": {**files, "pan": bad}}))


def test_init_pki_is_idempotent_and_the_ca_is_public(tmp_path: Path) -> None:
    assert deploy.init_pki(tmp_path / "pki", ["kafka", "localhost"])
    ca = (tmp_path / "pki" / "ca.pem").read_bytes()
    assert not deploy.init_pki(tmp_path / "pki", ["kafka"])
    assert (tmp_path / "pki" / "ca.pem").read_bytes() == ca
    assert (tmp_path / "pki" / "ca.pem").stat().st_mode & 0o044 == 0o044
    assert (tmp_path / "pki" / "broker.pem").stat().st_mode & 0o077 == 0


def test_init_home_trades_keys_and_members_sync_the_manifest(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    exchange = tmp_path / "exchange"
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic=topic)
    kafka.control_topic = f"{topic}.control"
    errors: list[BaseException] = []

    def run(**kw: Any) -> None:
        try:
            deploy.init_home(kafka=kafka, exchange=exchange, timeout_s=PATIENCE_S, **kw)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, kwargs={"path": tmp_path / "pan", "country": "PAN"}),
        threading.Thread(target=run, kwargs={"path": tmp_path / "cri", "country": "CRI"}),
    ]
    for t in threads:
        t.start()
    time.sleep(1)  # members wait for the Secretariat's key
    ts = deploy.init_home(
        tmp_path / "ts", kafka=kafka, exchange=exchange, enrol=["PAN", "CRI"], timeout_s=PATIENCE_S
    )
    for t in threads:
        t.join(PATIENCE_S)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert ts.created and sorted(ts.enrolled) == ["CRI", "PAN"]
    for c in ("pan", "cri"):
        home = load_home(tmp_path / c)
        assert home.manifest_path.is_file()
        assert home.config.kafka.bootstrap == kafka_bootstrap
    # Running again changes nothing and enrols nobody twice.
    again = deploy.init_home(
        tmp_path / "ts", kafka=kafka, exchange=exchange, enrol=["PAN", "CRI"], timeout_s=PATIENCE_S
    )
    assert not again.created and again.enrolled == []
    assert not list(exchange.rglob("*.key"))  # public material only


# -- the stack itself, where Docker runs ------------------------------------------


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.docker
@pytest.mark.timeout(1200)
def test_the_stack_runs_the_demo(tmp_path: Path) -> None:
    if not _docker_available():
        pytest.skip("no Docker engine answers (docker info failed)")
    from node.demo.synth import generate_encounters, write_csv
    from tests.factories import START

    secrets = REPO_ROOT / "deploy" / "secrets"
    if not (secrets / "kafka_admin_password").exists():
        made = subprocess.run(["sh", str(MAKE_SECRETS)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"deploy/make-secrets.sh needs root here: {made.stderr.strip()}")
    project = f"corredor-test-{uuid.uuid4().hex[:8]}"
    compose = ["docker", "compose", "-p", project, "-f", str(COMPOSE)]

    def run(*args: str, timeout: float = 600) -> str:
        done = subprocess.run(
            [*compose, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        run(
            "up",
            "-d",
            "--build",
            "--wait",
            "aggregator",
            "report",
            "node-pan",
            "node-cri",
            timeout=1200,
        )
        for country in ("PAN", "CRI"):
            rows = generate_encounters(country, 500, seed=5, start=START, weeks=4)
            inbox = REPO_ROOT / "deploy" / "inbox" / country
            write_csv(rows, inbox / "demo.csv")
            run("exec", "-T", f"node-{country.lower()}", "corredor", "ingest", "/inbox/demo.csv")
        # The folder: a user added inside the report container, signed in from the host.
        done = subprocess.run(
            [
                *compose,
                "exec",
                "-T",
                "report",
                "corredor",
                "users",
                "add",
                "ops",
                "--audience",
                "TS",
            ],
            input="compose test password\n",
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        folder = httpx.Client(base_url="http://127.0.0.1:8080")
        token = re.search(r"name='csrf' value='([^']+)'", folder.get("/signin").text)
        assert token
        signed = folder.post(
            "/signin",
            data={"csrf": token.group(1), "username": "ops", "password": "compose test password"},
        )
        assert signed.status_code == 303
        # No key visible, and the home cannot be written from the folder's container.
        assert run("exec", "-T", "report", "ls", "-A", "/var/lib/corredor/home/keys") == ""
        denied = subprocess.run(
            [
                *compose,
                "exec",
                "-T",
                "report",
                "python",
                "-c",
                "open('/var/lib/corredor/home/x', 'w')",
            ],
            capture_output=True,
            cwd=REPO_ROOT,
        )
        assert denied.returncode != 0
        deadline = time.monotonic() + 300
        producers: set[str] = set()
        while time.monotonic() < deadline and producers != {"PAN", "CRI"}:
            time.sleep(5)
            try:
                picture = folder.get("/api/flows", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                continue
            producers = {row["reporting_country"] for row in picture["flows"]}
        folder.close()
        assert producers == {"PAN", "CRI"}
        assert picture["rejected"] == 0
        run("exec", "-T", "node-pan", "corredor", "doctor")
        run("exec", "-T", "aggregator", "corredor", "doctor")
        # The report sees no key and writes nothing in the home; the aggregator
        # does have its keys (on the secretariat-keys volume).
        seen = run("exec", "-T", "report", "sh", "-c", "ls -A /var/lib/corredor/home/keys")
        assert seen.strip() == ""
        assert "secretariat.key" in run(
            "exec", "-T", "aggregator", "sh", "-c", "ls /var/lib/corredor/home/keys"
        )
        probe = subprocess.run(
            [*compose, "exec", "-T", "report", "sh", "-c", "touch /var/lib/corredor/home/x"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=60,
        )
        assert probe.returncode != 0 and "Read-only" in probe.stderr
        with urllib.request.urlopen("http://127.0.0.1:9465/metrics", timeout=5) as r:
            assert "corredor_acknowledged_total" in r.read().decode()
    finally:
        subprocess.run([*compose, "down", "-v"], capture_output=True, cwd=REPO_ROOT, timeout=300)
        for country in ("PAN", "CRI"):
            (REPO_ROOT / "deploy" / "inbox" / country / "demo.csv").unlink(missing_ok=True)


def test_make_secrets_writes_private_passwords_once(tmp_path: Path) -> None:
    import os
    import stat

    copy = tmp_path / "deploy" / "make-secrets.sh"
    copy.parent.mkdir()
    shutil.copy(MAKE_SECRETS, copy)
    assert subprocess.run(["sh", "-n", str(copy)]).returncode == 0
    if os.geteuid() != 0:
        pytest.skip("chown needs root (CI runs as root); the syntax check above ran")
    done = subprocess.run(["sh", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    secrets = tmp_path / "deploy" / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    first = {}
    for f in secrets.iterdir():
        st = f.stat()
        assert stat.S_IMODE(st.st_mode) == 0o400, f
        assert st.st_uid == (
            1000 if f.name in ("kafka_admin_password", "kafka_controller_password") else 10001
        )
        value = f.read_text().strip()
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", value), f
        first[f.name] = value
    assert set(first) == set(yaml.safe_load(COMPOSE.read_text())["secrets"])
    assert len(set(first.values())) == len(first)
    assert subprocess.run(["sh", str(copy)], capture_output=True).returncode == 0
    assert {f.name: f.read_text().strip() for f in secrets.iterdir()} == first  # kept
