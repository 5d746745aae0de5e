"""Files that hold raw data: private to the node's user, whatever the umask.

A member's home holds names, document numbers and dates of birth in its store
(``node.db`` and the ``-wal`` and ``-shm`` files SQLite keeps beside it) and in
its rejects files. The home is mode 0700 and each such file 0600, set
explicitly when it is created: a umask of 022 (or 000) would otherwise leave
them readable by every local user. SQLite creates the ``-wal``, ``-shm`` and
journal files itself, with the mode of the database file, so the database is
created 0600 before SQLite opens it; it is opened under a 077 umask as well.

``loose_files`` lists what is not private, for ``corredor doctor``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from node.errors import StoreError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: Suffixes SQLite gives the files it keeps beside a database.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; make ``path`` itself 0700."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(PRIVATE_DIR)
    except OSError as exc:
        raise StoreError(f"cannot make {path} a private directory: {exc}") from exc
    return path


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (never
    truncates). An existing file keeps its mode: ``doctor`` reports it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc}") from exc
    try:
        os.fchmod(fd, PRIVATE_FILE)  # the umask may have taken bits off, never added
    finally:
        os.close(fd)


def open_private(path: Path, *, newline: str | None = None) -> IO[str]:
    """Open ``path`` for writing text (UTF-8), created or truncated, mode 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        os.fchmod(fd, PRIVATE_FILE)
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc}") from exc
    return os.fdopen(fd, "w", encoding="utf-8", newline=newline)


def write_private_text(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``path`` whole through a temporary file and a rename, mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        os.write(fd, text.encode(encoding))
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextmanager
def private_umask() -> Iterator[None]:
    """Run the block under umask 077: whatever it creates is private."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def loose_files(home: Path) -> list[tuple[Path, int]]:
    """(path, mode) of the home and each store, SQLite side file, audit head
    and rejects file in it that a group or other users can read or write."""
    found: list[tuple[Path, int]] = []

    def check(path: Path) -> None:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            return
        if mode & 0o077:
            found.append((path, mode))

    check(home)
    for store in sorted(home.glob("*.db")):
        check(store)
        for suffix in (*SQLITE_SIDE_FILES, ".audit-head"):
            check(store.with_name(store.name + suffix))
    rejects = home / "rejects"
    if rejects.is_dir():
        check(rejects)
        for item in sorted(rejects.iterdir()):
            check(item)
    return found
