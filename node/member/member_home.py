"""A member's home: made once (``init_member``), then opened by every job:
its store, refused if it is not this home's or lost its history, and its
policy, refused if weaker than the regional floor.
"""

from __future__ import annotations

from pathlib import Path

from node.config import DEFAULT_TOPIC, Home, HomeConfig, KafkaSettings, policies_dir
from node.errors import ConfigError
from node.federation import trust
from node.home import create_home_dir, regional_floor, require_member
from node.member import encounters
from node.model.codes import is_iso3
from node.policy.loader import load_policy
from node.policy.model import Policy
from node.store.node_store import NodeStore
from node.store.reference import ReferenceStore


def init_member(
    path: Path,
    country: str,
    *,
    policy: Path | None = None,
    bootstrap: str = "127.0.0.1:9092",
    topic: str = DEFAULT_TOPIC,
    secretariat_pem: str | None = None,
) -> Home:
    """Create a member node's home: config, store, policy, signing and encryption
    keys, and (when given) the pinned Secretariat key."""
    country = country.upper()
    if not is_iso3(country):
        raise ConfigError(f"not an ISO 3166-1 alpha-3 country code: {country!r}")
    policy_file = policy or policies_dir() / f"{country}.yaml"
    loaded = load_policy(policy_file, regional_floor())
    if loaded.country != country:
        raise ConfigError(f"{policy_file} is {loaded.country}'s policy, not {country}'s")
    create_home_dir(path)
    home = Home(
        path,
        HomeConfig(
            role="member",
            country=country,
            policy=str(policy_file.resolve()),
            kafka=KafkaSettings(bootstrap=bootstrap, topic=topic),
        ),
    )
    trust.generate_member_keys(home)
    encounters.create_pseudonym_key(home)
    if secretariat_pem is not None:
        trust.pin_secretariat(home, secretariat_pem)
    with NodeStore(home.store_path) as store:
        store.assign_identity(country)
    ReferenceStore(home.store_path).close()
    home.save()
    return home


def member_store(home: Home, *, staging: bool = True) -> NodeStore:
    """The member's store, refused (``StoreLostHistory``) if it is not this
    home's or lost its history (node.store.identity); with ``staging``, also
    while a restored store waits for ``recover-revisions``."""
    store = NodeStore(require_member(home).store_path)
    try:
        store.verify_identity(home.country, staging=staging)
    except BaseException:
        store.close()
        raise
    return store


def home_policy(home: Home) -> Policy:
    """The home's policy, rejected if weaker than the regional floor."""
    return load_policy(require_member(home).policy_path, regional_floor())


def export_public_key(home: Home) -> str:
    require_member(home)
    if not home.public_key_path.is_file():
        raise ConfigError(f"no public key at {home.public_key_path}")
    return home.public_key_path.read_text(encoding="ascii")
