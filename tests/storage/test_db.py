"""Opening databases: settings, and refusing what is not ours without writing to it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, delete, text

from storage import (
    AppendOnlyError,
    CorruptDatabaseError,
    NotFoundError,
    SchemaTooNewError,
    StorageError,
    Store,
)
from storage.db import alembic_config, create_db_engine, head_revision, resolve
from storage.models import Program
from tests.storage.factories import PONG_ENV, policy

ROOT = Path(__file__).resolve().parents[2]


def _sql(database: str | Path, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements in one transaction, outside storage; the last one's rows, if any."""
    engine = create_db_engine(resolve(database))
    try:
        with engine.begin() as connection:
            for statement in statements:
                result = connection.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def test_db_open_creates_database_at_head(db_path: Path) -> None:
    with Store.open(db_path) as store:
        assert store.revision() == head_revision()
        assert store.path == db_path
    assert db_path.read_bytes().startswith(b"SQLite format 3\x00")


@pytest.mark.postgres
def test_db_open_creates_server_database_at_head(postgres_url: str) -> None:
    with Store.open(postgres_url) as store:
        assert store.revision() == head_revision()
        assert store.path is None and store.location == postgres_url
    with Store.open(postgres_url, create=False) as store:
        assert store.runs() == []


def test_db_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(db_path: Path) -> None:
    with Store.open(db_path) as store, store._read() as session:
        connection = session.connection()
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        busy_timeout_ms = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert busy_timeout_ms is not None and busy_timeout_ms >= 1000


def test_db_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(StorageError, match=r"(?i)foreign key"), store._write() as session:
        session.add(Program(run_id="0" * 32, source="x", sha256="0", origin="seed", generation=0))


def test_db_refuses_updates_and_deletes_of_append_only_rows(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    program = store.add_program(run.id, policy(1), origin="seed")
    with pytest.raises(AppendOnlyError, match=r"program\.source"), store._write() as session:
        row = session.get(Program, program.id)
        assert row is not None
        row.source = "def act(obs):\n    return 1\n"
    with pytest.raises(AppendOnlyError, match="delete"), store._write() as session:
        session.delete(session.get(Program, program.id))
    with pytest.raises(AppendOnlyError, match="bulk"), store._write() as session:
        session.execute(text("SELECT 1"))  # plain SQL is allowed
        session.execute(delete(Program))
    assert store.get_program(program.id).source == policy(1)


@pytest.mark.parametrize(
    "content",
    [os.urandom(8192), b"", b"just some text\nnot a database\n" * 50],
    ids=["random-bytes", "empty", "text"],
)
def test_db_open_refuses_non_database_without_writing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(content)
    with pytest.raises(CorruptDatabaseError, match="not an evocade database"):
        Store.open(path, create=False)
    assert path.read_bytes() == content
    if content:  # a non-empty non-database is refused even when creating is allowed
        with pytest.raises(CorruptDatabaseError):
            Store.open(path)
        assert path.read_bytes() == content


@pytest.mark.postgres
def test_db_open_refuses_other_server_database_without_writing(postgres_url: str) -> None:
    _sql(postgres_url, "CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('keep me')")
    with pytest.raises(CorruptDatabaseError, match="holds tables but is not an evocade database"):
        Store.open(postgres_url)
    assert _sql(
        postgres_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    ) == [("notes",)]
    assert _sql(postgres_url, "SELECT body FROM notes") == [("keep me",)]


def test_db_open_refuses_other_sqlite_database_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (body TEXT)")
    connection.execute("INSERT INTO notes VALUES ('keep me')")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    with pytest.raises(CorruptDatabaseError, match="not an evocade database"):
        Store.open(path)
    assert path.read_bytes() == before


def test_db_open_reports_damaged_database(db_path: Path) -> None:
    with Store.open(db_path) as store:
        run = store.create_run("Pong", PONG_ENV)
        for number in range(200):
            store.add_program(run.id, policy(number) * 20, origin="seed")
    data = bytearray(db_path.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # keep the header page, ruin the rest
    db_path.write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError), Store.open(db_path, create=False) as store:
        store.runs()
        store.history(run.id)


def test_db_open_missing_file_without_create_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(NotFoundError, match="no database at"):
        Store.open(path, create=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_db_open_empty_server_database_without_create_leaves_it_empty(
    postgres_url: str,
) -> None:
    with pytest.raises(NotFoundError, match="holds no evocade database"):
        Store.open(postgres_url, create=False)
    assert _sql(
        postgres_url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    ) == [(0,)]


@pytest.mark.postgres
def test_db_open_missing_server_database_is_one_line_without_password(
    postgres_admin: Engine,
) -> None:
    missing = postgres_admin.url.set(database="evocade_no_such_db", password="hunter2")
    with pytest.raises(StorageError) as caught:
        Store.open(missing.render_as_string(hide_password=False))
    message = str(caught.value)
    assert "evocade_no_such_db" in message and "does not exist" in message
    assert "hunter2" not in message and "\n" not in message


def test_db_open_refuses_newer_schema(database: str | Path) -> None:
    Store.open(database).close()
    _sql(database, "UPDATE alembic_version SET version_num = '9999'")
    before = database.read_bytes() if isinstance(database, Path) else None
    with pytest.raises(SchemaTooNewError, match="9999"):
        Store.open(database)
    if isinstance(database, Path):
        assert database.read_bytes() == before
    assert _sql(database, "SELECT version_num FROM alembic_version") == [("9999",)]


def test_db_open_accepts_sqlalchemy_url(tmp_path: Path) -> None:
    path = tmp_path / "by-url.db"
    with Store.open(f"sqlite:///{path}") as store:
        run = store.create_run("Pong", PONG_ENV)
    with Store.open(path, create=False) as store:
        assert store.get_run(run.id).game == "Pong"


def test_db_open_in_memory_database() -> None:
    with Store.open("sqlite://") as store:
        run = store.create_run("Breakout", {})
        assert [summary.run_id for summary in store.runs()] == [run.id]


def test_db_timestamps_round_trip_as_aware_utc(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    loaded = store.get_run(run.id)
    assert loaded.created_at == run.created_at
    assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset() == timedelta(0)
    first = store.add_program(run.id, policy(1), origin="seed")
    second = store.add_program(run.id, policy(2), origin="seed")
    assert first.created_at < second.created_at  # strictly increasing within a process
    (row,) = [r for r in store.history(run.id) if r.program_id == first.id]
    assert row.created_at == first.created_at and row.created_at.tzinfo is not None


def test_db_readers_are_not_blocked_by_an_open_write(database: str | Path) -> None:
    with Store.open(database) as writer, Store.open(database, create=False) as reader:
        committed = writer.create_run("Pong", PONG_ENV)
        with writer._write() as session:  # a write transaction holding the lock
            session.add(
                Program(run_id=committed.id, source="x", sha256="1", origin="seed", generation=0)
            )
            session.flush()
            assert [run.run_id for run in reader.runs()] == [committed.id]
            assert reader.history(committed.id) == []  # uncommitted rows are invisible
        assert len(reader.history(committed.id)) == 1


OPENER = """
import sys
sys.path.insert(0, sys.argv[2])
from storage import Store
print("ready", flush=True)
sys.stdin.readline()
with Store.open(sys.argv[1]) as store:
    print(store.create_run("Pong", {}).id, flush=True)
"""


@pytest.mark.parametrize("revision", [None, "0001"], ids=["new", "behind"])
def test_db_concurrent_opens_migrate_once(database: str | Path, revision: str | None) -> None:
    """Writers that open a new (or old) database at the same moment all get it, at head."""
    if revision is not None:
        engine = create_db_engine(resolve(database))
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        engine.dispose()
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(database), str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for opener in openers:  # every one imported and waiting: then all go at once
        assert opener.stdout is not None and opener.stdout.readline() == "ready\n"
    for opener in openers:
        assert opener.stdin is not None
        opener.stdin.write("go\n")
        opener.stdin.flush()
    outcomes = [opener.communicate(timeout=60) for opener in openers]
    for opener, (_, err) in zip(openers, outcomes, strict=True):
        assert opener.returncode == 0, err.strip().splitlines()[-1:]
    created = {out.strip() for out, _ in outcomes}
    with Store.open(database, create=False) as store:
        assert store.revision() == head_revision()
        assert {summary.run_id for summary in store.runs()} == created and len(created) == 4
