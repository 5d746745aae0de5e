"""The one place that reads the environment and node config files.

Lower layers take plain arguments; the CLI and the pipeline ask this module.

Environment variables (all optional):

    CORREDOR_HOME              default node home when --home is not given
    CORREDOR_KAFKA_BOOTSTRAP   bootstrap address overriding the home's config
    CORREDOR_CACHE_DIR         where Kafka jars and the local broker's state live
                               (default: $XDG_CACHE_HOME/corredor or ~/.cache/corredor)
    CORREDOR_KEY_PASSPHRASE    passphrase for private keys encrypted at rest
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "CORREDOR_HOME"
ENV_BOOTSTRAP = "CORREDOR_KAFKA_BOOTSTRAP"
ENV_CACHE_DIR = "CORREDOR_CACHE_DIR"
ENV_KEY_PASSPHRASE = "CORREDOR_KEY_PASSPHRASE"

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


def default_home() -> Path | None:
    value = os.environ.get(ENV_HOME, "").strip()
    return Path(value) if value else None


def schemas_dir() -> Path:
    return REPO_ROOT / "schemas"


def policies_dir() -> Path:
    return REPO_ROOT / "policies"


def kafka_pom() -> Path:
    return REPO_ROOT / "deploy" / "kafka" / "pom.xml"
