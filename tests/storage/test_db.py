"""Opening databases: settings, and refusing what is not ours without writing to it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import delete, text

from storage import (
    AppendOnlyError,
    CorruptDatabaseError,
    NotFoundError,
    SchemaTooNewError,
    StorageError,
    Store,
)
from storage.db import head_revision
from storage.models import Program
from tests.storage.factories import PONG_ENV, policy


def test_db_open_creates_database_at_head(db_path: Path) -> None:
    with Store.open(db_path) as store:
        assert store.revision() == head_revision()
        assert store.path == db_path
    assert db_path.read_bytes().startswith(b"SQLite format 3\x00")


def test_db_connections_use_wal_busy_timeout_and_foreign_keys(store: Store) -> None:
    with store._read() as session:
        connection = session.connection()
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_db_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(StorageError, match="FOREIGN KEY"), store._write() as session:
        session.add(Program(run_id="0" * 32, source="x", sha256="0", origin="seed", generation=0))


def test_db_refuses_updates_and_deletes_of_append_only_rows(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    program = store.add_program(run.id, policy(1), origin="seed")
    with pytest.raises(AppendOnlyError, match=r"program\.source"), store._write() as session:
        session.get(Program, program.id).source = "def act(obs):\n    return 1\n"
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


def test_db_open_refuses_newer_schema(db_path: Path) -> None:
    Store.open(db_path).close()
    connection = sqlite3.connect(db_path)
    connection.execute("UPDATE alembic_version SET version_num = '9999'")
    connection.commit()
    connection.close()
    before = db_path.read_bytes()
    with pytest.raises(SchemaTooNewError, match="9999"):
        Store.open(db_path)
    assert db_path.read_bytes() == before


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
    assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset().seconds == 0
    first = store.add_program(run.id, policy(1), origin="seed")
    second = store.add_program(run.id, policy(2), origin="seed")
    assert first.created_at < second.created_at  # strictly increasing within a process
    (row,) = [r for r in store.history(run.id) if r.program_id == first.id]
    assert row.created_at == first.created_at and row.created_at.tzinfo is not None


def test_db_readers_are_not_blocked_by_an_open_write(db_path: Path) -> None:
    with Store.open(db_path) as writer, Store.open(db_path, create=False) as reader:
        committed = writer.create_run("Pong", PONG_ENV)
        with writer._write() as session:  # a write transaction holding the lock
            session.add(
                Program(run_id=committed.id, source="x", sha256="1", origin="seed", generation=0)
            )
            session.flush()
            assert [run.run_id for run in reader.runs()] == [committed.id]
            assert reader.history(committed.id) == []  # uncommitted rows are invisible
        assert len(reader.history(committed.id)) == 1
