"""Corredor: a federated node for sharing extraregional migration flow data.

Each member country of the Regional Conference on Migration runs a node that
keeps raw encounter records at home, turns them into only what its national
policy allows, and publishes signed Avro events to a shared Kafka topic. The
Technical Secretariat's aggregator verifies and applies them into the regional
picture.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The version is written once, in pyproject.toml; this reads the installed
    #: package's metadata (what `corredor --version` prints too).
    __version__ = version("corredor")
except PackageNotFoundError:  # a checkout on sys.path without `pip install`
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "aggregator",
    "cli",
    "codec",
    "config",
    "crypto",
    "csvfile",
    "demo",
    "devkafka",
    "errors",
    "federation",
    "files",
    "folder",
    "home",
    "limits",
    "logging_setup",
    "loops",
    "member",
    "model",
    "operator",
    "policy",
    "report",
    "store",
    "topics",
    "transport",
    "yamlsafe",
]
