"""Opening a database: URL resolution, SQLite settings, safety checks, migrations.

The order matters, and is the reason this module exists:
1. A SQLite file that exists is first probed **read-only** with the plain `sqlite3` module. A
   file that is not SQLite, a SQLite file of another application, or a database migrated by a
   newer evocade is refused before anything could write to it: bad input never corrupts.
2. Only then is the SQLAlchemy engine created. Each SQLite connection gets WAL journaling (a
   reader never blocks the loop's writer), a busy timeout (a second writer waits instead of
   failing), foreign keys on, and a short automatic checkpoint interval (the main file is
   never more than ~1 MiB of commits behind the WAL, so a copy of the `.db` file alone, or a
   disk that fills up, loses little), from a connect listener.
3. `upgrade head` runs if, and only if, the database is behind, as one transaction: a writer
   killed mid-migration leaves the previous schema, not half of the next one.

Any SQLAlchemy URL works; nothing outside this module knows it is talking to SQLite.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker
from sqlalchemy.orm.interfaces import MANYTOONE
from sqlalchemy.pool import QueuePool, StaticPool

from storage.errors import (
    AppendOnlyError,
    CorruptDatabaseError,
    NotFoundError,
    SchemaTooNewError,
    StorageError,
)
from storage.models import MUTABLE_COLUMNS, SET_ONCE_COLUMNS

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_MAGIC = b"SQLite format 3\x00"
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


# -- alembic -------------------------------------------------------------------------------


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


# -- probing before anything can write -------------------------------------------------------


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
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise StorageError(f"cannot read {path}: {error.strerror}") from error
    if not header:
        if create:
            return None
        raise CorruptDatabaseError(f"{path} is an empty file, not an evocade database")
    if header != SQLITE_MAGIC:
        raise CorruptDatabaseError(f"{path} is not an evocade database (not a SQLite file)")
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


# -- sessions --------------------------------------------------------------------------------


def _refuse_updates_and_deletes(session: Session, _flush: UOWTransaction, _objs: Any) -> None:
    for obj in session.deleted:
        raise AppendOnlyError(f"refusing to delete a {type(obj).__tablename__} row: append-only")
    for obj in session.dirty:
        state = inspect(obj)
        mapper = state.mapper
        changed = {
            attr.key for attr in mapper.column_attrs if state.attrs[attr.key].history.has_changes()
        }
        changed |= {
            rel.key
            for rel in mapper.relationships
            if rel.direction is MANYTOONE and state.attrs[rel.key].history.has_changes()
        }
        refused = changed - MUTABLE_COLUMNS.get(type(obj), frozenset())
        if refused:
            names = ", ".join(sorted(refused))
            raise AppendOnlyError(
                f"refusing to update {type(obj).__tablename__}.{names}: storage is append-only"
            )
        for key in sorted(changed & SET_ONCE_COLUMNS.get(type(obj), frozenset())):
            before = state.attrs[key].history.deleted
            if any(value is not None for value in before):
                raise AppendOnlyError(
                    f"refusing to change {type(obj).__tablename__}.{key} once set: it is "
                    "written once, from NULL"
                )


def _refuse_bulk_writes(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if state.is_delete or (
        state.is_update
        and mapper is not None
        and (mapper.class_ not in MUTABLE_COLUMNS or mapper.class_ in SET_ONCE_COLUMNS)
    ):
        raise AppendOnlyError("refusing a bulk UPDATE/DELETE: storage is append-only")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (callers get plain snapshots)."""
    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "before_flush", _refuse_updates_and_deletes)
    event.listen(factory, "do_orm_execute", _refuse_bulk_writes)
    return factory


# -- errors ----------------------------------------------------------------------------------

_CORRUPT_MARKERS = ("malformed", "not a database", "file is encrypted", "disk i/o error")
_BUSY_MARKERS = ("database is locked", "database is busy", "database table is locked")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Turn driver errors into one-line `StorageError`s that name the database."""
    try:
        yield
    except StorageError:
        raise
    except sa_exc.DBAPIError as error:
        message = _first_line(error.orig if error.orig is not None else error)
        lowered = message.lower()
        if any(marker in lowered for marker in _CORRUPT_MARKERS):
            raise CorruptDatabaseError(f"{where} is damaged: {message}") from error
        if any(marker in lowered for marker in _BUSY_MARKERS):
            raise StorageError(f"{where} is locked by another process: {message}") from error
        if isinstance(error, sa_exc.IntegrityError):
            raise StorageError(f"{where}: integrity constraint failed: {message}") from error
        raise StorageError(f"{where}: {message}") from error
    except sqlite3.DatabaseError as error:
        raise CorruptDatabaseError(f"{where} is damaged: {_first_line(error)}") from error
