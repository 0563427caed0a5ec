"""Alembic migrations: a real upgrade of an old database, and models that match the scripts."""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage import Store, env_key
from storage.db import alembic_config, create_db_engine, head_revision, resolve
from storage.models import Base
from tests.storage.factories import PONG_ENV, policy

RUN_ID = "a" * 32
SEED_ID = "b" * 32
CHILD_ID = "c" * 32
EVALUATION_ID = "d" * 32
NOW = "2025-01-01 12:00:00.000000"


def _migrate_to(path: Path, revision: str) -> None:
    engine = create_db_engine(resolve(path))
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def _fill_revision_0001(path: Path) -> None:
    """Rows written the way an evocade at schema 0001 wrote them (no program.note)."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA foreign_keys = ON")
    with connection:
        connection.execute(
            "INSERT INTO run (id, game, env, config, status, head_program_id, created_at, "
            "updated_at) VALUES (?, 'Pong', ?, '{}', 'running', NULL, ?, ?)",
            (RUN_ID, json.dumps(PONG_ENV), NOW, NOW),
        )
        for program_id, parent, source, generation in (
            (SEED_ID, None, policy(0), 0),
            (CHILD_ID, SEED_ID, policy(1), 1),
        ):
            connection.execute(
                "INSERT INTO program (id, run_id, source, sha256, parent_id, second_parent_id, "
                "origin, generation, created_at, check_report) "
                "VALUES (?, ?, ?, ?, ?, NULL, 'llm', ?, ?, NULL)",
                (program_id, RUN_ID, source, program_id[:1] * 64, parent, generation, NOW),
            )
        connection.execute("UPDATE run SET head_program_id = ? WHERE id = ?", (CHILD_ID, RUN_ID))
        connection.execute(
            "INSERT INTO evaluation (id, program_id, game, env, env_key, seeds, seeds_key, "
            "episodes, mean_return, total_steps, backend, checked, check_report, limits, "
            "wall_seconds, cpu_seconds, peak_memory_mb, status, created_at) VALUES "
            "(?, ?, 'Pong', ?, ?, '[0]', '0', ?, -5.0, 900, 'bwrap', 1, NULL, NULL, 2.0, 0.5, "
            "30.0, 'ok', ?)",
            (
                EVALUATION_ID,
                CHILD_ID,
                json.dumps(PONG_ENV),
                env_key("Pong", PONG_ENV),
                json.dumps([{"seed": 0, "status": "ok", "return": -5.0, "length": 900}]),
                NOW,
            ),
        )
        trace = zlib.compress(json.dumps({"actions": "0123"}).encode())
        connection.execute(
            "INSERT INTO trace (evaluation_id, episode, seed, steps, data, raw_bytes, "
            "stored_bytes, truncated) VALUES (?, 0, 0, 900, ?, 17, ?, 0)",
            (EVALUATION_ID, trace, len(trace)),
        )
        connection.execute(
            "INSERT INTO event (run_id, kind, message, data, created_at) "
            "VALUES (?, 'run_started', 'old', NULL, ?)",
            (RUN_ID, NOW),
        )
    connection.close()


def test_migrations_upgrade_database_made_by_first_revision(db_path: Path) -> None:
    _migrate_to(db_path, "0001")
    _fill_revision_0001(db_path)
    columns = {row[1] for row in sqlite3.connect(db_path).execute("PRAGMA table_info(program)")}
    assert "note" not in columns

    with Store.open(db_path) as store:
        assert store.revision() == head_revision() != "0001"
        child = store.get_program(CHILD_ID)
        assert (child.parent_id, child.note, child.source) == (SEED_ID, None, policy(1))
        assert store.get_run(RUN_ID).head_program_id == CHILD_ID
        found = store.find_evaluation(CHILD_ID, env_key("Pong", PONG_ENV), [0])
        assert found is not None and found.id == EVALUATION_ID and found.mean_return == -5.0
        assert store.traces(EVALUATION_ID)[0].data == {"actions": "0123"}
        assert [event.kind for event in store.events(RUN_ID)] == ["run_started"]
        best = store.best_program(RUN_ID)
        assert best is not None and best.program_id == CHILD_ID
        # what 0002 added works on the upgraded database
        noted = store.add_program(RUN_ID, policy(2), parent_id=CHILD_ID, note="by hand")
        assert store.get_program(noted.id).note == "by hand"
        # what 0003 added: the evaluation knows its run
        assert store.get_evaluation(EVALUATION_ID).run_id == RUN_ID
        (summary,) = store.runs()
        assert (summary.programs, summary.evaluations, summary.best_mean_return) == (3, 1, -5.0)
    indexes = {row[1] for row in sqlite3.connect(db_path).execute("PRAGMA index_list(evaluation)")}
    assert {"ix_evaluation_program_id_env_key_seeds_key", "ix_evaluation_run_scores"} <= indexes


def test_migrations_0003_fills_evaluation_run_id_from_its_program(db_path: Path) -> None:
    _migrate_to(db_path, "0002")
    runs = {"1" * 32: ["2" * 32, "3" * 32], "4" * 32: ["5" * 32]}
    connection = sqlite3.connect(db_path)
    with connection:
        for run_id, program_ids in runs.items():
            connection.execute(
                "INSERT INTO run (id, game, env, config, status, head_program_id, created_at, "
                "updated_at) VALUES (?, 'Pong', '{}', '{}', 'running', NULL, ?, ?)",
                (run_id, NOW, NOW),
            )
            for number, program_id in enumerate(program_ids):
                connection.execute(
                    "INSERT INTO program (id, run_id, source, sha256, origin, generation, "
                    "created_at) VALUES (?, ?, ?, ?, 'seed', 0, ?)",
                    (program_id, run_id, policy(number), program_id * 2, NOW),
                )
                for evaluation in range(number + 1):  # 1 and 2 evaluations in run 1, 1 in run 4
                    connection.execute(
                        "INSERT INTO evaluation (id, program_id, game, env, env_key, seeds, "
                        "seeds_key, episodes, mean_return, total_steps, backend, checked, "
                        "wall_seconds, cpu_seconds, peak_memory_mb, status, created_at) VALUES "
                        "(?, ?, 'Pong', '{}', 'k', '[0]', '0', '[]', ?, 900, 'bwrap', 1, 0, 0, 0, "
                        "'ok', ?)",
                        (f"{program_id[:31]}{evaluation}", program_id, float(number), NOW),
                    )
    connection.close()

    with Store.open(db_path) as store:
        assert store.revision() == head_revision()
        summaries = {summary.run_id: summary for summary in store.runs()}
        assert {run_id: s.evaluations for run_id, s in summaries.items()} == {
            "1" * 32: 3,
            "4" * 32: 1,
        }
        # equal scores: the older evaluation, then the smaller id, represents the program
        history = store.history("1" * 32)
        assert [row.evaluation_id for row in history] == ["2" * 31 + "0", "3" * 31 + "0"]
    connection = sqlite3.connect(db_path)
    pairs = connection.execute(
        "SELECT evaluation.run_id, program.run_id FROM evaluation "
        "JOIN program ON program.id = evaluation.program_id"
    ).fetchall()
    assert len(pairs) == 4 and all(copied == owner for copied, owner in pairs)
    column = next(
        row for row in connection.execute("PRAGMA table_info(evaluation)") if row[1] == "run_id"
    )
    assert column[3] == 1  # NOT NULL
    assert ("run", "run_id", "id") in {
        (row[2], row[3], row[4])
        for row in connection.execute("PRAGMA foreign_key_list(evaluation)")
    }
    connection.close()


def test_migrations_match_models(db_path: Path) -> None:
    Store.open(db_path).close()
    engine = create_db_engine(resolve(db_path))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_migrations_downgrade_and_upgrade_again(db_path: Path) -> None:
    Store.open(db_path).close()
    engine = create_db_engine(resolve(db_path))
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    engine.dispose()
    tables = {
        row[0]
        for row in sqlite3.connect(db_path).execute("SELECT name FROM sqlite_master")
        if not row[0].startswith("sqlite_")
    }
    assert tables == {"alembic_version"}
    with Store.open(db_path) as store:
        assert store.revision() == head_revision()


def test_migrations_not_rerun_on_current_database(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.create_run("Pong", PONG_ENV)
    before = db_path.read_bytes()
    with Store.open(db_path, create=False) as store:
        store.runs()
    assert db_path.read_bytes() == before
