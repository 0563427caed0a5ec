"""The main SQLite file kept close to the WAL, and consistent backups while writing (#12)."""

from __future__ import annotations

import random
import shutil
import sqlite3
import string
import threading
from pathlib import Path

import pytest

from storage import InvalidInputError, LlmExchange, StorageError, Store
from storage.backup import backup_sqlite
from storage.db import WAL_AUTOCHECKPOINT_PAGES
from tests.storage.factories import PONG_ENV, policy, result


def _rows_in_file_alone(db_path: Path, copy: Path, table: str = "program") -> int:
    """How many rows a copy of only the `.db` file holds (what `cp evocade.db` keeps)."""
    shutil.copyfile(db_path, copy)
    connection = sqlite3.connect(copy)
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


def test_checkpoint_open_leaves_the_schema_in_the_main_file(db_path: Path, tmp_path: Path) -> None:
    with Store.open(db_path):
        assert _rows_in_file_alone(db_path, tmp_path / "copy.db", "alembic_version") == 1


def test_checkpoint_puts_recent_commits_into_the_main_file(db_path: Path, tmp_path: Path) -> None:
    with Store.open(db_path) as store:
        run = store.create_run("Pong", PONG_ENV)
        for number in range(5):
            store.add_program(run.id, policy(number), origin="seed")
        # a few small commits sit in the WAL: the main file alone does not have them yet
        assert _rows_in_file_alone(db_path, tmp_path / "before.db") == 0
        checkpoint = store.checkpoint()
        assert checkpoint is not None and checkpoint.complete and checkpoint.wal_frames > 0
        assert _rows_in_file_alone(db_path, tmp_path / "after.db") == 5
        truncated = store.checkpoint(truncate=True)
        assert truncated is not None and truncated.wal_frames == 0
        assert db_path.with_name(db_path.name + "-wal").stat().st_size == 0


def test_checkpoint_runs_by_itself_after_a_burst_of_writes(db_path: Path, tmp_path: Path) -> None:
    with Store.open(db_path) as store, store._read() as session:
        pages = session.connection().exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == WAL_AUTOCHECKPOINT_PAGES
    rng = random.Random(0)
    call_bytes = 100_000
    calls = 50  # 5 MB of incompressible prompts: past the checkpoint interval several times
    with Store.open(db_path) as store:
        run = store.create_run("Pong", PONG_ENV)
        for _ in range(calls):
            prompt = "".join(rng.choices(string.ascii_letters, k=call_bytes))
            store.record_llm_call(run.id, LlmExchange(prompt=prompt, model="m"))
        in_file = _rows_in_file_alone(db_path, tmp_path / "copy.db", "llm_call")
        # at most one checkpoint interval (plus the call that crossed it) is only in the WAL
        behind = (calls - in_file) * call_bytes
        assert behind <= WAL_AUTOCHECKPOINT_PAGES * 4096 + call_bytes
        wal = db_path.with_name(db_path.name + "-wal").stat().st_size
        assert wal < 8 << 20  # bounded by the checkpoint interval and journal_size_limit


def test_checkpoint_is_none_on_a_server_database(store: Store) -> None:
    if store.path is not None:
        pytest.skip("server databases only")
    assert store.checkpoint() is None


def test_backup_is_a_consistent_copy_while_a_writer_keeps_writing(
    db_path: Path, tmp_path: Path
) -> None:
    with Store.open(db_path) as store:
        run = store.create_run("Pong", PONG_ENV)
        seed = store.add_program(run.id, policy(0), origin="seed")
        store.record_evaluation(seed.id, result([1.0]))
    stop = threading.Event()
    written: list[str] = []

    def write() -> None:
        with Store.open(db_path) as writer:
            number = 1
            while not stop.is_set():
                program = writer.add_program(run.id, policy(number), parent_id=seed.id)
                writer.record_evaluation(program.id, result([float(number)], trace_steps=400))
                written.append(program.id)
                number += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        copies = []
        for index in range(3):
            target = tmp_path / f"backup-{index}.db"
            report = backup_sqlite(db_path, target)
            assert report.target == target and report.bytes == target.stat().st_size > 0
            copies.append(target)
    finally:
        stop.set()
        thread.join(60)
    assert len(written) > 0
    for copy in copies:
        assert not copy.with_name(copy.name + "-wal").exists()  # one self-contained file
        connection = sqlite3.connect(copy)
        try:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        finally:
            connection.close()
        with Store.open(copy, create=False) as restored:
            history = restored.history(run.id)
            assert history[0].program_id == seed.id
            # each evaluation commits with its trace, so the copy has both or neither
            evaluations = [
                evaluation for row in history for evaluation in restored.evaluations(row.program_id)
            ]
            assert len(evaluations) >= 1
            assert all(len(restored.traces(e.id)) == 1 for e in evaluations)


def test_backup_refuses_to_overwrite_or_copy_what_is_not_ours(
    db_path: Path, tmp_path: Path
) -> None:
    with Store.open(db_path) as store:
        store.create_run("Pong", PONG_ENV)
    target = tmp_path / "out.db"
    target.write_text("precious")
    with pytest.raises(InvalidInputError, match="refusing to overwrite"):
        backup_sqlite(db_path, target)
    assert target.read_text() == "precious"
    assert backup_sqlite(db_path, target, overwrite=True).bytes > 0
    with pytest.raises(InvalidInputError, match="onto itself"):
        backup_sqlite(db_path, db_path)
    not_ours = tmp_path / "notes.txt"
    not_ours.write_text("hello")
    with pytest.raises(StorageError, match="not an evocade database"):
        backup_sqlite(not_ours, tmp_path / "copy.db")
    with pytest.raises(InvalidInputError, match="does not exist"):
        backup_sqlite(db_path, tmp_path / "missing" / "copy.db")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_backup_of_a_server_database_points_at_pg_dump(store: Store, tmp_path: Path) -> None:
    if store.path is not None:
        pytest.skip("server databases only")
    with pytest.raises(InvalidInputError, match="pg_dump") as refused:
        store.backup(tmp_path / "out.dump")
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "out.dump").exists()
