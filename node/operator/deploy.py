"""Set-up steps of a deployed federation (``corredor deploy ...``), each idempotent
so a container can run it on every start.

    init_pki     the broker's CA and certificate (a development CA; a production
                 broker can use certificates from the country's own CA instead)
    init_kafka   SCRAM users, the federation's topics and its ACLs, as the admin
    init_home    a member's or the Secretariat's home, and the exchange of public
                 keys through a directory (a shared volume in the compose stack;
                 e-mail or a USB key between real countries)

The exchange directory holds public material only: ``secretariat.pub`` written
by the Secretariat, ``<ISO3>/signing.pub`` and ``<ISO3>/encryption.pub`` written
by each member. Private keys never leave their home.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from node.aggregator.setup import add_member, init_aggregator
from node.config import CONFIG_FILE, Home, KafkaSettings, load_home
from node.devkafka.pki import CA_CERT, init_ca, issue
from node.devkafka.secure import SECRETARIAT_USER, federation_grants
from node.devkafka.secure import federation_topics as federation_topic_table
from node.errors import ConfigError, ConfigFileError, CorredorError
from node.federation import trust
from node.federation.control import publish_manifest, sync_manifest
from node.limits import MAX_KEY_BYTES, read_limited
from node.member.member_home import init_member
from node.topics import EVENTS_TOPIC
from node.transport.credentials import security_settings
from node.transport.provision import AclSpec, ProvisionResult, TopicSpec, provision

SECRETARIAT_PUB = "secretariat.pub"


# -- certificates ------------------------------------------------------------------


def init_pki(directory: Path, sans: Sequence[str], owner: tuple[int, int] | None = None) -> bool:
    """CA and ``broker`` certificate in ``directory`` unless present. The CA
    certificate is world-readable (clients need it); the broker's keystore is
    0600 and, with ``owner``, given to the broker's uid. Returns True if created."""
    if (directory / CA_CERT).exists() and (directory / "broker.pem").exists():
        return False
    init_ca(directory)
    issued = issue(directory, "broker", sans)
    (directory / CA_CERT).chmod(0o644)
    directory.chmod(0o755)
    if owner is not None:
        os.chown(issued.keystore, *owner)
    return True


# -- the cluster -------------------------------------------------------------------


def read_secret(path: Path) -> str:
    """A password from a secret file; errors name the file, never the content."""
    try:
        data = read_limited(path, limit=MAX_KEY_BYTES, what="a secret file", error=ConfigFileError)
        value = data.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the secret {path}: {type(exc).__name__}") from exc
    if not value:
        raise ConfigError(f"the secret {path} is empty")
    if any(c in value for c in ',"\\ '):
        raise ConfigError(f"the secret {path} holds a comma, quote, backslash or blank")
    return value


def federation_acls(members: Sequence[str], shared_topic: str) -> list[AclSpec]:
    """The federation's ACL table: the one the local secure cluster uses
    (node.devkafka.secure, docs/security.md), dead-letter topic included."""
    return federation_grants(members, shared_topic=shared_topic)


def federation_topics(shared_topic: str, partitions: int, replication: int) -> list[TopicSpec]:
    """The federation's topics (the local secure cluster's table, node.devkafka.secure)."""
    return federation_topic_table(
        shared_topic=shared_topic, partitions=partitions, replication=replication
    )


def init_kafka(
    bootstrap: str,
    *,
    admin_user: str,
    admin_password_file: Path,
    users: Mapping[str, Path],
    protocol: str = "SASL_SSL",
    admin_mechanism: str = "PLAIN",
    cafile: Path | None = None,
    shared_topic: str = EVENTS_TOPIC,
    partitions: int = 3,
    replication: int = 1,
    timeout_s: float = 180.0,
) -> ProvisionResult:
    """Users (name -> password file), topics and ACLs of the federation."""
    members = sorted(u for u in users if u != SECRETARIAT_USER)
    bad = [m for m in members if len(m) != 3 or not m.isalpha() or not m.isupper()]
    if bad:
        raise ConfigError(f"member users are ISO 3166-1 alpha-3 codes in capitals, not {bad}")
    if SECRETARIAT_USER not in users:
        raise ConfigError(f"give the {SECRETARIAT_USER} user's password file too")
    try:
        config = security_settings(
            protocol=protocol,
            mechanism=admin_mechanism,
            username=admin_user,
            password=read_secret(admin_password_file),
            cafile=str(cafile) if cafile else None,
        )
    except ValueError as exc:
        raise ConfigError(f"admin connection settings: {exc}") from exc
    config["bootstrap_servers"] = bootstrap.split(",")
    return provision(
        config,
        users={u: read_secret(p) for u, p in users.items()},
        topics=federation_topics(shared_topic, partitions, replication),
        acls=federation_acls(members, shared_topic),
        timeout_s=timeout_s,
    )


# -- homes -------------------------------------------------------------------------


@dataclass(frozen=True)
class HomeSetup:
    home: Home
    created: bool
    enrolled: list[str]


def _wait_for(paths: Sequence[Path], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.is_file() for p in paths):
        if time.monotonic() > deadline:
            missing = ", ".join(str(p) for p in paths if not p.is_file())
            raise ConfigError(f"waited {timeout_s:.0f} s for {missing}")
        time.sleep(1)


def _connect(home: Home, kafka: KafkaSettings) -> None:
    """This home's Kafka settings (paths and names only; no password in the file)."""
    home.config.kafka = KafkaSettings.model_validate(
        {**home.config.kafka.model_dump(), **kafka.model_dump(exclude_unset=True)}
    )
    home.save()


def init_home(
    path: Path,
    *,
    kafka: KafkaSettings,
    exchange: Path,
    country: str | None = None,
    enrol: Sequence[str] = (),
    sync: bool = True,
    timeout_s: float = 300.0,
) -> HomeSetup:
    """Create (or reconnect) a home and trade public keys through ``exchange``.

    Aggregator (``country`` None): writes ``secretariat.pub``; for each ISO3 in
    ``enrol`` waits for its public keys, adds those not yet in the manifest,
    signs and publishes the manifest on the control topic.
    Member: waits for ``secretariat.pub`` and pins it, writes its own public
    keys, and (``sync``) waits until the manifest lists its key.
    """
    exchange.mkdir(parents=True, exist_ok=True)
    created = not (path / CONFIG_FILE).exists()
    if country is None:
        home = init_aggregator(path, topic=kafka.topic) if created else load_home(path)
        if not home.is_aggregator:
            raise ConfigError(f"{path} is a member's home, not the Secretariat's")
        _connect(home, kafka)
        _copy_public(home.secretariat_pub_path, exchange / SECRETARIAT_PUB)
        enrolled = _enrol(home, exchange, enrol, timeout_s)
        return HomeSetup(home, created, enrolled)
    pinned = exchange / SECRETARIAT_PUB
    _wait_for([pinned], timeout_s)
    if created:
        home = init_member(
            path, country, topic=kafka.topic, secretariat_pem=pinned.read_text(encoding="ascii")
        )
    else:
        home = load_home(path)
        if home.is_aggregator or home.country != country.upper():
            raise ConfigError(f"{path} is not {country.upper()}'s home")
    _connect(home, kafka)
    mine = exchange / home.country
    mine.mkdir(exist_ok=True)
    _copy_public(home.public_key_path, mine / "signing.pub")
    _copy_public(home.encryption_pub_path, mine / "encryption.pub")
    if sync:
        _sync_until_listed(home, timeout_s)
    return HomeSetup(home, created, [])


def _copy_public(source: Path, dest: Path) -> None:
    if not dest.exists() or dest.read_bytes() != source.read_bytes():
        tmp = dest.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o644)
        tmp.replace(dest)  # readers never see half a key


def _enrol(home: Home, exchange: Path, countries: Sequence[str], timeout_s: float) -> list[str]:
    wanted = [c.upper() for c in countries]
    _wait_for(
        [exchange / c / name for c in wanted for name in ("signing.pub", "encryption.pub")],
        timeout_s,
    )
    current = trust.current_manifest(home) if home.manifest_path.exists() else None
    added = []
    for c in wanted:
        member = current.member(c) if current else None
        pem = (exchange / c / "signing.pub").read_text(encoding="ascii")
        if member and any(k.public_pem == pem for k in member.signing_keys):
            continue
        add_member(home, c, exchange / c / "signing.pub", exchange / c / "encryption.pub")
        added.append(c)
    if home.manifest_path.exists():
        _retry(lambda: publish_manifest(home), timeout_s)
    return added


def _sync_until_listed(home: Home, timeout_s: float) -> None:
    from node.crypto.signing import key_id_for, load_public_pem

    key_id = key_id_for(home.country, load_public_pem(home.public_key_path.read_bytes()))

    def listed() -> bool:
        manifest, _ = sync_manifest(home)
        if manifest.signing_key(key_id) is None:
            raise ConfigError(f"the manifest does not list {key_id} yet")
        return True

    _retry(listed, timeout_s)


def _retry(step: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            step()
            return
        except CorredorError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
