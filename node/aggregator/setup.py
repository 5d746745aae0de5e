"""The Secretariat's home: made once, then the members enrolled in its manifest."""

from __future__ import annotations

from pathlib import Path

from node.config import DEFAULT_TOPIC, Home, HomeConfig, KafkaSettings
from node.crypto.keys import read_key_text
from node.federation import drafts
from node.home import create_home_dir, require_aggregator
from node.store.picture import PictureStore


def init_aggregator(
    path: Path, *, bootstrap: str = "127.0.0.1:9092", topic: str = DEFAULT_TOPIC
) -> Home:
    """Create the Secretariat's aggregator home."""
    create_home_dir(path)
    home = Home(
        path,
        HomeConfig(role="aggregator", kafka=KafkaSettings(bootstrap=bootstrap, topic=topic)),
    )
    PictureStore(home.store_path).close()
    home.save()
    drafts.init_secretariat_keys(home)
    return home


def add_member(
    home: Home, country: str, pem_file: Path, encryption_pem_file: Path | None = None
) -> str:
    """Add a member's public signing key (and encryption key) to the manifest and
    sign it, so the aggregator trusts it at once. Returns the signing key id."""
    require_aggregator(home)

    def read(path: Path) -> str:
        return read_key_text(path)

    key_id = drafts.add_member(
        home,
        country,
        read(pem_file),
        encryption_pem=read(encryption_pem_file) if encryption_pem_file else None,
    )
    drafts.sign_draft(home)
    return key_id
