"""Stated limits on the files Corredor reads whole, and the one bounded read.

A file a person writes or hands over (a policy, the regional floor, a home's
corredor.yaml, schemas/compatibility.yaml, a key, a manifest, a JSON reference
file) is read into memory and parsed as a whole. Without a bound, a 100 MB policy
took a minute and 1.75 GB of memory to reject. So each kind has a size limit,
checked before any byte is parsed: first on the file's size, then again while
reading (a FIFO or a device reports no size, and a file may grow while read).

The limits are generous multiples of real files (the largest policy in the
repository is under 3 KB) and are documented in docs/policies.md and docs/cli.md.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from node.errors import FileFormatError

KIB = 1024
MIB = 1024 * KIB

#: Policies, the regional floor, corredor.yaml and schemas/compatibility.yaml.
MAX_YAML_BYTES = 1 * MIB
#: Nested mappings and sequences in one YAML document (real files use 4).
MAX_YAML_DEPTH = 32
#: Nodes in one YAML document, counting each alias as the nodes it repeats.
MAX_YAML_NODES = 100_000

#: An Avro schema file (.avsc); the largest in schemas/ is about 3 KB.
MAX_SCHEMA_BYTES = 1 * MIB
#: A signed federation manifest or its draft (a few KB per member).
MAX_MANIFEST_BYTES = 4 * MIB
#: A PEM key, a pseudonym or linkage key file, or a key bundle.
MAX_KEY_BYTES = 64 * KIB
#: A JSON or JSON Lines reference file (consular missions, focal points,
#: legislation...), which is read whole.
MAX_REFERENCE_JSON_BYTES = 64 * MIB


def _human(n: int) -> str:
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n >= KIB and n % KIB == 0:
        return f"{n // KIB} KiB"
    return f"{n} bytes"


def too_large(what: str, limit: int) -> str:
    """The reason given for a file over its limit (names the limit)."""
    return f"larger than the {_human(limit)} limit for {what}; refused before parsing"


def read_limited(
    path: Path,
    *,
    limit: int,
    what: str,
    error: type[FileFormatError],
) -> bytes:
    """The whole of ``path``, or ``error`` naming the file when it holds more
    than ``limit`` bytes or cannot be read. Memory use is bounded by ``limit``
    whatever the file is (a regular file, a pipe, a device). A missing file
    raises ``FileNotFoundError`` unchanged."""
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > limit:
                raise error(too_large(what, limit), file=str(path))
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise  # a missing file is the caller's to explain ("no manifest at ...")
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    if len(data) > limit:
        raise error(too_large(what, limit), file=str(path))
    return data
