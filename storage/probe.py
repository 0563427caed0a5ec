"""What a database is before anything may write to it: its schema revision, or a refusal.

Step 1 of opening (`storage.db`): a SQLite file is read through a read-only connection, a server
database through a connection that runs no DDL. A file that is not SQLite, a SQLite file of
another application, or a database migrated by a newer evocade is refused here, so bad input
never corrupts. Also the Alembic configuration, which knows the revisions this evocade has.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, inspect

from storage.errors import (
    CorruptDatabaseError,
    NotFoundError,
    SchemaTooNewError,
    StorageError,
    translate_errors,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_MAGIC = b"SQLite format 3\x00"


def alembic_config() -> Config:
    """Alembic's configuration, built in code: the scripts ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "storage/migrations has no revisions"
    return head


def _check_known(revision: str | None, where: str) -> None:
    if revision is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(revision)
    except CommandError as error:
        raise SchemaTooNewError(
            f"{where} is at schema revision {revision!r}, which this evocade does not know "
            "(made by a newer version?); refusing to touch it"
        ) from error


def probe_sqlite_file(path: Path, *, create: bool) -> str | None:
    """The schema revision of the SQLite file at `path`, or None for a new database.

    Reads only: the header bytes, then the schema through a read-only connection. Raises
    `CorruptDatabaseError` for anything that is not an evocade database.
    """
    if not path.exists():
        if not create:
            raise NotFoundError(f"no database at {path} (use --db or EVOCADE_DB)")
        if not path.parent.is_dir():
            raise NotFoundError(f"cannot create {path}: directory {path.parent} does not exist")
        return None
    if not path.is_file():
        raise CorruptDatabaseError(f"{path} is not an evocade database (not a regular file)")
    header = _header(path)
    if not header:
        if create:
            return None
        raise CorruptDatabaseError(f"{path} is an empty file, not an evocade database")
    if header != SQLITE_MAGIC:
        raise CorruptDatabaseError(f"{path} is not an evocade database (not a SQLite file)")
    return _probe_sqlite_schema(path)


def _header(path: Path) -> bytes:
    """The file's first bytes, as many as SQLite's magic string has (fewer if it is shorter)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise StorageError(f"cannot read {path}: {error.strerror}") from error


def _probe_sqlite_schema(path: Path) -> str | None:
    """The revision of a SQLite file, read through a read-only connection."""
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise CorruptDatabaseError(f"cannot open {path}: {error}") from error
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if not tables:
            return None
        if "alembic_version" not in tables:
            raise CorruptDatabaseError(
                f"{path} is a SQLite database but not an evocade database (no schema version)"
            )
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as error:
        raise CorruptDatabaseError(f"{path} is damaged or not a database: {error}") from error
    finally:
        connection.close()
    return _revision(rows, tables, str(path))


def probe_engine(engine: Engine, where: str) -> str | None:
    """`probe_sqlite_file` for a server database: reads the tables and the version, no DDL."""
    with translate_errors(where), engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        if not tables:
            return None
        if "alembic_version" not in tables:
            raise CorruptDatabaseError(f"{where} holds tables but is not an evocade database")
        rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
    return _revision(rows, tables, where)


def _revision(rows: Sequence[Any], tables: set[str], where: str) -> str | None:
    """The one version row; none at all only for a database migrated back to base."""
    if not rows and tables == {"alembic_version"}:
        return None
    if len(rows) != 1:
        raise CorruptDatabaseError(f"{where} has {len(rows)} schema versions, expected one")
    revision = str(rows[0][0])
    _check_known(revision, where)
    return revision
