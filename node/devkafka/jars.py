"""Fetch the Kafka broker's classpath from Maven Central, once.

Apache publishes the broker (``kafka_2.13``) with every module it needs as
runtime dependencies, so ``mvn dependency:copy-dependencies`` on a small pom
yields a working classpath on machines with neither Docker nor a Kafka tarball.
The jars land in ``<cache>/jars-<hash of the pom>``: editing the pom (a new Kafka
version) fetches a new set, and the old one stays usable until removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from node.errors import KafkaSetupError

#: Kafka 4.x refuses to run on anything older.
MIN_JAVA = 17

#: Written last, so a fetch cut short (Ctrl-C, network) is redone next time.
COMPLETE_MARKER = ".complete"

INSTALL_HINT = "install it, e.g. `apt-get install openjdk-17-jre-headless maven`"

_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')

Echo = Callable[[str], None]


def require_tool(name: str) -> str:
    """Absolute path of a command on PATH, or a KafkaSetupError naming it."""
    path = shutil.which(name)
    if path is None:
        raise KafkaSetupError(
            f"`{name}` was not found on PATH; the local Kafka broker needs Java "
            f"{MIN_JAVA}+ and Maven: {INSTALL_HINT}"
        )
    return path


def java_major_version(java: str) -> int:
    """The major version of a ``java`` executable ("1.8" counts as 8)."""
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaSetupError(f"could not run `{java} -version`: {exc}") from exc
    # `java -version` has always printed to stderr; some builds use stdout.
    match = _VERSION_RE.search(done.stderr + done.stdout)
    if match is None:
        raise KafkaSetupError(f"could not read the Java version from `{java} -version`")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def check_java(java: str) -> None:
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise KafkaSetupError(
            f"`{java}` is Java {major}; Kafka 4.x needs Java {MIN_JAVA} or newer: {INSTALL_HINT}"
        )


def find_java() -> str:
    """Path of a ``java`` new enough for Kafka 4.x."""
    java = require_tool("java")
    check_java(java)
    return java


def jars_dir(pom: Path, cache: Path) -> Path:
    """Where the classpath for this exact pom content is (or will be) cached."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    return cache / f"jars-{digest}"


def ensure_jars(
    pom: Path, cache: Path, echo: Echo | None = None, *, expect: str = "kafka_*.jar"
) -> Path:
    """Return a directory holding the broker's runtime classpath, fetching it once.

    Checks that ``java`` (17+) is installed, and ``mvn`` too when a fetch is
    needed, so a missing tool is reported by name rather than as a failed
    subprocess. Output goes to ``echo`` (progress for humans), if given.
    ``expect``: a jar the fetch must have brought (another pom, another jar).
    """
    say: Echo = echo or (lambda _msg: None)
    java = require_tool("java")
    if not pom.is_file():
        raise KafkaSetupError(f"Kafka runtime pom not found: {pom}")
    target = jars_dir(pom, cache)
    fetched = (target / COMPLETE_MARKER).is_file()
    # Maven is only needed for the first fetch; name it before running anything.
    mvn = None if fetched else require_tool("mvn")
    check_java(java)
    if fetched:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache / f"{target.name}.lock"):
        # Another process may have finished the fetch while we waited.
        if (target / COMPLETE_MARKER).is_file():
            return target
        if target.exists():
            shutil.rmtree(target)
        say(f"Fetching the Kafka broker jars with Maven into {target} (first run only)...")
        assert mvn is not None  # found above whenever the marker was missing
        _copy_dependencies(mvn, pom, target)
        if not any(target.glob(expect)):
            raise KafkaSetupError(f"Maven finished but no {expect} is in {target}")
        (target / COMPLETE_MARKER).write_text(pom.read_text(encoding="utf-8"), encoding="utf-8")
    say(f"Kafka jars ready in {target}")
    return target


def _copy_dependencies(mvn: str, pom: Path, target: Path) -> None:
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={target}",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaSetupError(f"could not run Maven to fetch the Kafka jars: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        tail = "\n".join(output[-30:])
        raise KafkaSetupError(
            f"Maven failed to fetch the Kafka jars (exit {done.returncode}); "
            f"is Maven Central reachable?\n{tail}"
        )


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise fetches between processes (two test runs, CLI and tests)."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
