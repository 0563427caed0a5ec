"""A consistent copy of a SQLite database while the loop keeps writing to it.

Copying the `.db` file with `cp` is not a backup: commits since the last checkpoint live in
the `-wal` file, and a copy taken mid-write can be torn. SQLite's online backup API reads one
consistent snapshot through a normal connection (WAL included; in WAL mode the writer is not
blocked meanwhile). The copy is written beside the target under a temporary name, checked
(`PRAGMA quick_check`), switched to a single self-contained file (rollback journal, no WAL),
and only then renamed into place: an interrupted backup never leaves a half-written OUT.

PostgreSQL has its own tool for this (`pg_dump`); `postgres_hint` says how to call it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from storage.db import BUSY_TIMEOUT_MS, probe_sqlite_file
from storage.errors import InvalidInputError, StorageError, first_line


@dataclass(frozen=True)
class BackupReport:
    source: Path
    target: Path
    revision: str | None
    bytes: int
    seconds: float


def backup_sqlite(source: Path, target: Path, *, overwrite: bool = False) -> BackupReport:
    """Copy the evocade database at `source` to `target` (see the module docstring)."""
    source, target = source.absolute(), target.absolute()
    revision = probe_sqlite_file(source, create=False)  # ours, and a schema we know
    if target == source or target.name.startswith(source.name + "-"):
        raise InvalidInputError(f"cannot back {source} up onto itself or its WAL files")
    if not target.parent.is_dir():
        raise InvalidInputError(f"cannot write {target}: directory {target.parent} does not exist")
    if target.exists() and not overwrite:
        raise InvalidInputError(f"{target} exists; refusing to overwrite it (use --force)")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    started = time.monotonic()
    try:
        _copy(source, partial)
        os.replace(partial, target)
    except sqlite3.Error as error:
        raise StorageError(f"backup of {source} failed: {first_line(error)}") from error
    except OSError as error:
        raise StorageError(f"backup to {target} failed: {error.strerror or error}") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    _sync_directory(target.parent)
    return BackupReport(source, target, revision, target.stat().st_size, time.monotonic() - started)


def _copy(source: Path, partial: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    reader = sqlite3.connect(str(source), timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        copy = sqlite3.connect(str(partial))
        try:
            reader.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")
            (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise StorageError(f"the copy of {source} fails its check: {verdict}")
            copy.commit()
        finally:
            copy.close()
    finally:
        reader.close()
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def postgres_hint(url: URL, target: str) -> str:
    """The one-line answer to `evocade backup` on a PostgreSQL database."""
    shown = url.set(drivername="postgresql").render_as_string(hide_password=True)
    return (
        "evocade backup copies SQLite files; for PostgreSQL use its own tool: "
        f"pg_dump --format=custom --file {target} '{shown}'"
    )
