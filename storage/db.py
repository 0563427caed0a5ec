"""Opening a database: URL resolution, SQLite settings, safety checks, migrations.

The order matters, and is the reason this module exists:
1. A SQLite file that exists is first probed **read-only** with the plain `sqlite3` module
   (`storage.probe`). A file that is not SQLite, a SQLite file of another application, or a
   database migrated by a newer evocade is refused before anything could write to it: bad
   input never corrupts.
2. Only then is the SQLAlchemy engine created. Each SQLite connection gets WAL journaling (a
   reader never blocks the loop's writer), a busy timeout (a second writer waits instead of
   failing), foreign keys on, and a short automatic checkpoint interval (the main file is
   never more than ~1 MiB of commits behind the WAL, so a copy of the `.db` file alone, or a
   disk that fills up, loses little), from a connect listener.
3. `upgrade head` runs if, and only if, the database is behind, as one transaction: a writer
   killed mid-migration leaves the previous schema, not half of the next one.

Sessions then refuse what append-only storage never does (`storage.sessions`), and driver
errors leave as one-line `StorageError`s (`storage.errors.translate_errors`). Any SQLAlchemy
URL works; nothing outside these modules knows it is talking to SQLite.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import QueuePool, StaticPool

from storage.errors import CorruptDatabaseError, StorageError, translate_errors
from storage.probe import (
    alembic_config,
    head_revision,
    probe_engine,
    probe_sqlite_file,
)
from storage.sessions import make_sessionmaker

__all__ = [  # what callers import from here; probing and sessions live in their own modules
    "BUSY_TIMEOUT_MS",
    "WAL_AUTOCHECKPOINT_PAGES",
    "Location",
    "alembic_config",
    "create_db_engine",
    "create_read_only_engine",
    "head_revision",
    "make_sessionmaker",
    "probe_engine",
    "probe_sqlite_file",
    "resolve",
    "translate_errors",
    "upgrade",
    "writer",
]
BUSY_TIMEOUT_MS = 15_000
CACHE_KIB = 32_768  # per connection; SQLite's 2 MiB default thrashes on deep lineage walks
# Checkpoint the WAL into the main file once it holds this many pages (4 KiB each: ~1 MiB;
# SQLite's default is 1000), and shrink a WAL file that a burst grew back to 4 MiB afterwards.
WAL_AUTOCHECKPOINT_PAGES = 256
JOURNAL_SIZE_LIMIT_BYTES = 4 << 20
_BEGIN_OPTION = "evocade_sqlite_begin"
PG_MIGRATION_LOCK = 0x65766F636164  # "evocad": the advisory lock `upgrade` takes on PostgreSQL


@dataclass(frozen=True)
class Location:
    """Where a database lives: the URL, and for a SQLite file its path."""

    url: URL
    path: Path | None  # None for a server database or an in-memory SQLite one

    @property
    def display(self) -> str:
        """How messages name the database (never shows a password)."""
        if self.path is not None:
            return str(self.path)
        return self.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"


ACCEPTED_FORMS = (
    "use a SQLite file path (evocade.db), sqlite:///PATH or "
    "postgresql+psycopg://USER:PASSWORD@HOST[:PORT]/NAME"
)
"""What a message about a bad database location suggests instead."""

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def _masked(text: str) -> str:
    """A URL as typed, with anything between `user:` and `@` hidden (it may be a password)."""
    return _PASSWORD.sub(r"\1***@", text)


def resolve(url_or_path: str | Path) -> Location:
    """A SQLAlchemy URL (anything with '://') as is; anything else is a SQLite file path."""
    text = str(url_or_path)
    if isinstance(url_or_path, Path) or "://" not in text:
        path = Path(text).expanduser().absolute()
        return Location(URL.create("sqlite", database=str(path)), path)
    try:
        url = make_url(text)
    except (sa_exc.ArgumentError, ValueError) as error:
        raise StorageError(f"{_masked(text)!r} is not a database URL; {ACCEPTED_FORMS}") from error
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        if database.startswith("file:"):
            return Location(url, None)
        path = Path(database).expanduser().absolute()
        return Location(url.set(database=str(path)), path)
    return Location(url, None)


# -- the engine ------------------------------------------------------------------------------


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is off: it would not put DDL (migrations) inside a
    # transaction. `_sqlite_on_begin` emits BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # Writers ask for BEGIN IMMEDIATE: they take the write lock up front (waiting up to the busy
    # timeout) instead of failing with SQLITE_BUSY when upgrading a read transaction later.
    mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def create_db_engine(location: Location) -> Engine:
    kwargs: dict[str, Any] = {}
    if location.is_sqlite and location.path is None:  # in-memory: one shared connection
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    try:
        engine = create_engine(location.url, **kwargs)
    except sa_exc.NoSuchModuleError as error:  # an unknown kind of database or driver
        raise StorageError(
            f"cannot use database {location.display}: evocade does not know database kind "
            f"{location.url.drivername!r}; {ACCEPTED_FORMS}"
        ) from error
    except ImportError as error:  # a known kind whose Python driver is not installed
        raise StorageError(
            f"cannot use database {location.display}: its Python driver "
            f"({error.name or error}) is not installed; {ACCEPTED_FORMS}"
        ) from error
    except sa_exc.ArgumentError as error:  # e.g. options this kind of database refuses
        raise StorageError(f"cannot use database {location.display}: {error}") from error
    if location.is_sqlite:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_read_only_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()


def create_read_only_engine(location: Location) -> Engine:
    """An engine that cannot write, for viewers (`evocade serve`): two locks, one per layer.

    SQLite: every connection is opened with `mode=ro` (the driver refuses writes to the file;
    SQLite may still create the `-wal`/`-shm` side files, never the database's content) and
    runs with `PRAGMA query_only`. PostgreSQL: every session starts with
    `default_transaction_read_only`, so the server refuses writes. Nothing here migrates or
    changes the journal mode. Other backends are refused rather than trusted.
    """
    backend = location.url.get_backend_name()
    if location.is_sqlite:
        path = location.path
        if path is None:
            raise StorageError(f"{location.display}: only a SQLite file can be opened read-only")
        uri = f"{path.as_uri()}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, check_same_thread=False)

        engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool)
        event.listen(engine, "connect", _sqlite_read_only_on_connect)
        return engine
    if backend == "postgresql":
        try:
            return create_engine(
                location.url,
                connect_args={"options": "-c default_transaction_read_only=on"},
            )
        except (sa_exc.ArgumentError, ImportError) as error:
            raise StorageError(f"cannot use database {location.display}: {error}") from error
    raise StorageError(
        f"{location.display}: read-only viewing supports SQLite files and PostgreSQL only"
    )


def writer(engine: Engine) -> Engine:
    """The same engine (same pool), whose transactions take the write lock when they begin."""
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def upgrade(engine: Engine, where: str) -> None:
    """Run every missing migration in one transaction (foreign keys checked before commit).

    One migrating process at a time per database: SQLite's write lock, PostgreSQL's
    transaction-scoped advisory lock `PG_MIGRATION_LOCK` (released at commit or rollback).
    """
    is_sqlite = engine.dialect.name == "sqlite"
    config = alembic_config()
    with translate_errors(where), engine.connect() as connection:
        driver = connection.connection.dbapi_connection
        if is_sqlite:  # a table rebuild must not trip (or cascade) foreign keys midway
            driver.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        try:
            connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    # What BEGIN IMMEDIATE does on SQLite: processes that open the database at
                    # the same moment migrate one after the other, each finding the schema the
                    # previous one committed, instead of all but one failing midway.
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if is_sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise CorruptDatabaseError(
                            f"{where}: migration left {len(broken)} dangling references"
                        )
        finally:
            if is_sqlite:
                driver.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]
