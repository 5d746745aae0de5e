"""The one place that reads the environment and node config files.

Lower layers take plain arguments; the CLI and the pipeline ask this module.

Environment variables (all optional):

    CORREDOR_HOME              default node home when --home is not given
    CORREDOR_KAFKA_BOOTSTRAP   bootstrap address overriding the home's config
    CORREDOR_KAFKA_CLIENT      kafka.client of a config that does not name one, so
                               of every home created while it is set (kafka-python
                               or confluent; default kafka-python)
    CORREDOR_CACHE_DIR         where Kafka jars and the local broker's state live
                               (default: $XDG_CACHE_HOME/corredor or ~/.cache/corredor)
    CORREDOR_KEY_PASSPHRASE    passphrase for private keys encrypted at rest
    CORREDOR_LOG_FORMAT        text (default) or json: one JSON object per log line
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from node.errors import ConfigError, ConfigFileError
from node.limits import MAX_KEY_BYTES, read_limited
from node.topics import AGGREGATOR_GROUP, CONTROL_TOPIC, EVENTS_TOPIC
from node.topics import dead_letter_topic_for as dead_letter_topic_for  # where callers found it
from node.transport.base import Client
from node.transport.credentials import security_settings
from node.yamlsafe import load_yaml

ENV_HOME = "CORREDOR_HOME"
ENV_BOOTSTRAP = "CORREDOR_KAFKA_BOOTSTRAP"
ENV_KAFKA_CLIENT = "CORREDOR_KAFKA_CLIENT"
ENV_CACHE_DIR = "CORREDOR_CACHE_DIR"
ENV_KEY_PASSPHRASE = "CORREDOR_KEY_PASSPHRASE"
ENV_LOG_FORMAT = "CORREDOR_LOG_FORMAT"
#: The online folder's users, settings and access log (node.folder.accounts).
ENV_FOLDER_DB = "CORREDOR_FOLDER_DB"

#: The repository checkout this package runs from (schemas/, policies/, deploy/).
REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Directory for downloaded jars and local broker state."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "corredor"


def kafka_dir() -> Path:
    """Jars, data directories and the state file of `corredor kafka up`."""
    return cache_dir() / "kafka"


def bootstrap_override() -> str | None:
    """A bootstrap address from the environment, if one is set."""
    value = os.environ.get(ENV_BOOTSTRAP, "").strip()
    return value or None


DEFAULT_KAFKA_CLIENT: Client = "kafka-python"


def default_kafka_client() -> Client:
    """``kafka.client`` for a config that does not name one: ``CORREDOR_KAFKA_CLIENT``
    if set (how the whole suite runs on confluent-kafka), else kafka-python.
    A home's config names the client it was created with, so setting the
    variable later changes no existing home."""
    value = os.environ.get(ENV_KAFKA_CLIENT, "").strip()
    if not value:
        return DEFAULT_KAFKA_CLIENT
    if value not in get_args(Client):
        choices = " or ".join(get_args(Client))
        raise ConfigError(f"{ENV_KAFKA_CLIENT}={value!r} is not a Kafka client: use {choices}")
    return cast(Client, value)


def default_home() -> Path | None:
    value = os.environ.get(ENV_HOME, "").strip()
    return Path(value) if value else None


def schemas_dir() -> Path:
    return REPO_ROOT / "schemas"


def policies_dir() -> Path:
    return REPO_ROOT / "policies"


def regional_policy_path() -> Path:
    """The regional floor every national policy is checked against."""
    return policies_dir() / "regional.yaml"


def kafka_pom() -> Path:
    return REPO_ROOT / "deploy" / "kafka" / "pom.xml"


# -- node homes ----------------------------------------------------------------

CONFIG_FILE = "corredor.yaml"
DEFAULT_TOPIC = EVENTS_TOPIC
DEFAULT_GROUP = AGGREGATOR_GROUP


class KafkaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bootstrap: str = "127.0.0.1:9092"
    topic: str = DEFAULT_TOPIC
    # Where the signed manifest is published; needed before any manifest is known.
    control_topic: str = CONTROL_TOPIC
    group_id: str = DEFAULT_GROUP
    partitions: int = Field(default=3, ge=1)
    replication: int = Field(default=1, ge=1)
    # How this node authenticates (docs/security.md). SASL_* needs a username and
    # one password source; the password itself is never written in this file.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    username: str | None = None
    password_file: str | None = None  # a file holding only the password, mode 0600
    password_env: str | None = None  # or the NAME of an environment variable holding it
    ssl_cafile: str | None = None  # PEM CA that signed the brokers' certificates
    # The Kafka library (docs/cli.md). kafka-python is the default (or what
    # CORREDOR_KAFKA_CLIENT names); "confluent" produces and consumes through
    # librdkafka (pip install 'corredor[confluent]'); the control topic,
    # side-topic producers and admin clients stay on kafka-python.
    client: Client = Field(default_factory=default_kafka_client)

    @model_validator(mode="after")
    def _credentials_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            if not self.username:
                raise ValueError(f"{self.security_protocol} needs kafka.username")
            if (self.password_file is None) == (self.password_env is None):
                raise ValueError(
                    f"{self.security_protocol} needs exactly one of kafka.password_file "
                    "and kafka.password_env"
                )
        return self


def kafka_password(settings: KafkaSettings, base: Path) -> SecretStr | None:
    """The Kafka password from its file (relative to ``base``) or environment
    variable. Errors name where it was looked for, never what was found."""
    if settings.password_env is not None:
        value = os.environ.get(settings.password_env)
        if not value:
            raise ConfigError(f"kafka.password_env names {settings.password_env}, which is not set")
        return SecretStr(value)
    if settings.password_file is None:
        return None
    path = Path(settings.password_file).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise ConfigError(f"{path}: a password file must be private; run chmod 600 on it")
        data = read_limited(
            path, limit=MAX_KEY_BYTES, what="a password file", error=ConfigFileError
        )
        value = data.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read kafka.password_file {path}: {type(exc).__name__}") from exc
    if not value:
        raise ConfigError(f"kafka.password_file {path} is empty")
    return SecretStr(value)


def kafka_security(settings: KafkaSettings, base: Path) -> dict[str, Any]:
    """kafka-python settings for this node's identity (empty for PLAINTEXT).

    The password in the result never prints itself (see
    node.transport.credentials.Redacted), so the dict is safe in logs.
    """
    password = kafka_password(settings, base)
    cafile = None
    if settings.ssl_cafile:
        ca = Path(settings.ssl_cafile).expanduser()
        cafile = str(ca if ca.is_absolute() else base / ca)
    try:
        return security_settings(
            protocol=settings.security_protocol,
            mechanism=settings.sasl_mechanism,
            username=settings.username,
            password=password.get_secret_value() if password is not None else None,
            cafile=cafile,
        )
    except ValueError as exc:
        raise ConfigError(f"kafka settings: {exc}") from exc


class HomeConfig(BaseModel):
    """``<home>/corredor.yaml``: what kind of node this is and where things are."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(pattern="^(member|aggregator)$")
    country: str | None = None
    policy: str | None = None
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    #: Events per batch seal: one Ed25519 signature covers this many events,
    #: each carrying its Merkle inclusion proof (docs/security.md). 0 signs
    #: every event on its own, for a Secretariat that does not yet read
    #: SignedEvent v2.
    seal_batch: int = Field(default=64, ge=0, le=65_536)
    #: `linkage share` asks the operator before sealing the regional linkage
    #: key to a member it has not sealed it to before (docs/security.md).
    confirm_new_linkage_recipients: bool = False
    #: Seconds between the signed audit heads `publish --follow` and
    #: `aggregate --follow` put on the control topic, so that the other parties
    #: hold an anchor of this log outside its writer (docs/security.md). 0: never.
    audit_head_interval_s: int = Field(default=3600, ge=0, le=7 * 86_400)
    #: Processes an aggregator checks (decodes, verifies) events in while its
    #: one writer applies them in order (node/aggregator/parallel.py). 0:
    #: check in the writer's process.
    aggregator_workers: int = Field(default=2, ge=0, le=64)


class Home:
    """A node's home directory and the paths inside it."""

    def __init__(self, path: Path, config: HomeConfig) -> None:
        self.path = path
        self.config = config

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def store_path(self) -> Path:
        return self.path / ("aggregator.db" if self.is_aggregator else "node.db")

    @property
    def keys_dir(self) -> Path:
        return self.path / "keys"

    @property
    def signing_key_path(self) -> Path:
        return self.keys_dir / "signing.key"

    @property
    def public_key_path(self) -> Path:
        return self.keys_dir / "signing.pub"

    @property
    def encryption_key_path(self) -> Path:
        return self.keys_dir / "encryption.key"

    @property
    def encryption_pub_path(self) -> Path:
        return self.keys_dir / "encryption.pub"

    @property
    def secretariat_key_path(self) -> Path:
        """The Secretariat's manifest-signing key (aggregator homes only)."""
        return self.keys_dir / "secretariat.key"

    @property
    def secretariat_pub_path(self) -> Path:
        """The Secretariat's public key: its own, or the one a member pinned."""
        return self.keys_dir / "secretariat.pub"

    @property
    def pseudonym_key_path(self) -> Path:
        """The node's own HMAC key for pseudonyms (never leaves the node)."""
        return self.keys_dir / "pseudonym.key"

    @property
    def linkage_key_path(self) -> Path:
        """The regional linkage key (members only; never the Secretariat)."""
        return self.keys_dir / "linkage.key"

    @property
    def retired_keys_dir(self) -> Path:
        return self.keys_dir / "retired"

    @property
    def federation_dir(self) -> Path:
        return self.path / "federation"

    @property
    def manifest_path(self) -> Path:
        """The newest signed manifest this home has verified."""
        return self.federation_dir / "manifest.json"

    @property
    def manifest_draft_path(self) -> Path:
        return self.federation_dir / "draft.json"

    @property
    def rejects_dir(self) -> Path:
        return self.path / "rejects"

    @property
    def is_aggregator(self) -> bool:
        return self.config.role == "aggregator"

    @property
    def country(self) -> str:
        if not self.config.country:
            raise ConfigError(f"{self.config_file}: this home has no country")
        return self.config.country

    @property
    def policy_path(self) -> Path:
        if not self.config.policy:
            raise ConfigError(f"{self.config_file}: no policy configured")
        p = Path(self.config.policy)
        return p if p.is_absolute() else (self.path / p)

    @property
    def bootstrap(self) -> str:
        return bootstrap_override() or self.config.kafka.bootstrap

    def kafka_security(self) -> dict[str, Any]:
        """kafka-python security settings from this home's config (relative paths
        resolve against the home)."""
        return kafka_security(self.config.kafka, self.path)

    def save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False),
            encoding="utf-8",
        )


def load_home(path: Path) -> Home:
    file = path / CONFIG_FILE
    if not file.is_file():
        raise ConfigError(f"{path} is not a Corredor home (no {CONFIG_FILE}); run `corredor init`")
    data = load_yaml(file, error=ConfigFileError, what="a home's corredor.yaml")
    try:
        config = HomeConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{file}: {problems}") from exc
    return Home(path, config)


def key_passphrase() -> bytes | None:
    """The private-key passphrase from the environment, if set."""
    value = os.environ.get(ENV_KEY_PASSPHRASE)
    return value.encode("utf-8") if value else None
