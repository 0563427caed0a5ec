"""Alembic migrations: a real upgrade of an old database, and models that match the scripts.

Old databases are filled through tables reflected from the database itself (the schema that old
revision made), so the same rows land on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, Table, insert, inspect, text, update

from storage import Store, env_key
from storage.db import alembic_config, create_db_engine, head_revision, resolve
from storage.models import Base
from tests.storage.factories import PONG_ENV, policy

RUN_ID = "a" * 32
SEED_ID = "b" * 32
CHILD_ID = "c" * 32
EVALUATION_ID = "d" * 32
NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


@contextmanager
def _engine(database: str | Path) -> Iterator[Engine]:
    engine = create_db_engine(resolve(database))
    try:
        yield engine
    finally:
        engine.dispose()


def _migrate_to(database: str | Path, revision: str) -> None:
    config = alembic_config()
    with _engine(database) as engine, engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _table(connection: Connection, name: str) -> Table:
    """The table as the database has it now (reflected), not as today's models describe it."""
    return Table(name, MetaData(), autoload_with=connection)


def _insert(connection: Connection, table: str, **values: Any) -> None:
    connection.execute(insert(_table(connection, table)), values)


def _fill_revision_0001(database: str | Path) -> None:
    """Rows written the way an evocade at schema 0001 wrote them (no program.note)."""
    with _engine(database) as engine, engine.begin() as connection:
        _insert(
            connection,
            "run",
            id=RUN_ID,
            game="Pong",
            env=PONG_ENV,
            config={},
            status="running",
            head_program_id=None,
            created_at=NOW,
            updated_at=NOW,
        )
        for program_id, parent, source, generation in (
            (SEED_ID, None, policy(0), 0),
            (CHILD_ID, SEED_ID, policy(1), 1),
        ):
            _insert(
                connection,
                "program",
                id=program_id,
                run_id=RUN_ID,
                source=source,
                sha256=program_id[:1] * 64,
                parent_id=parent,
                second_parent_id=None,
                origin="llm",
                generation=generation,
                created_at=NOW,
                check_report=None,
            )
        run = _table(connection, "run")
        connection.execute(update(run).where(run.c.id == RUN_ID).values(head_program_id=CHILD_ID))
        _insert(
            connection,
            "evaluation",
            id=EVALUATION_ID,
            program_id=CHILD_ID,
            game="Pong",
            env=PONG_ENV,
            env_key=env_key("Pong", PONG_ENV),
            seeds=[0],
            seeds_key="0",
            episodes=[{"seed": 0, "status": "ok", "return": -5.0, "length": 900}],
            mean_return=-5.0,
            total_steps=900,
            backend="bwrap",
            checked=True,
            check_report=None,
            limits=None,
            wall_seconds=2.0,
            cpu_seconds=0.5,
            peak_memory_mb=30.0,
            status="ok",
            created_at=NOW,
        )
        trace = zlib.compress(json.dumps({"actions": "0123"}).encode())
        _insert(
            connection,
            "trace",
            evaluation_id=EVALUATION_ID,
            episode=0,
            seed=0,
            steps=900,
            data=trace,
            raw_bytes=17,
            stored_bytes=len(trace),
            truncated=False,
        )
        _insert(
            connection,
            "event",
            run_id=RUN_ID,
            kind="run_started",
            message="old",
            data=None,
            created_at=NOW,
        )


def test_migrations_upgrade_database_made_by_first_revision(database: str | Path) -> None:
    _migrate_to(database, "0001")
    _fill_revision_0001(database)
    with _engine(database) as engine, engine.connect() as connection:
        assert "note" not in {
            column["name"] for column in inspect(connection).get_columns("program")
        }

    with Store.open(database) as store:
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
    with _engine(database) as engine, engine.connect() as connection:
        indexes = {index["name"] for index in inspect(connection).get_indexes("evaluation")}
    assert {"ix_evaluation_program_id_env_key_seeds_key", "ix_evaluation_run_scores"} <= indexes


def test_migrations_0003_fills_evaluation_run_id_from_its_program(database: str | Path) -> None:
    _migrate_to(database, "0002")
    runs = {"1" * 32: ["2" * 32, "3" * 32], "4" * 32: ["5" * 32]}
    with _engine(database) as engine, engine.begin() as connection:
        for run_id, program_ids in runs.items():
            _insert(
                connection,
                "run",
                id=run_id,
                game="Pong",
                env={},
                config={},
                status="running",
                head_program_id=None,
                created_at=NOW,
                updated_at=NOW,
            )
            for number, program_id in enumerate(program_ids):
                _insert(
                    connection,
                    "program",
                    id=program_id,
                    run_id=run_id,
                    source=policy(number),
                    sha256=program_id * 2,
                    origin="seed",
                    generation=0,
                    created_at=NOW,
                )
                for evaluation in range(number + 1):  # 1 and 2 evaluations in run 1, 1 in run 4
                    _insert(
                        connection,
                        "evaluation",
                        id=f"{program_id[:31]}{evaluation}",
                        program_id=program_id,
                        game="Pong",
                        env={},
                        env_key="k",
                        seeds=[0],
                        seeds_key="0",
                        episodes=[],
                        mean_return=float(number),
                        total_steps=900,
                        backend="bwrap",
                        checked=True,
                        wall_seconds=0.0,
                        cpu_seconds=0.0,
                        peak_memory_mb=0.0,
                        status="ok",
                        created_at=NOW,
                    )

    with Store.open(database) as store:
        assert store.revision() == head_revision()
        summaries = {summary.run_id: summary for summary in store.runs()}
        assert {run_id: s.evaluations for run_id, s in summaries.items()} == {
            "1" * 32: 3,
            "4" * 32: 1,
        }
        # equal scores: the older evaluation, then the smaller id, represents the program
        history = store.history("1" * 32)
        assert [row.evaluation_id for row in history] == ["2" * 31 + "0", "3" * 31 + "0"]
    with _engine(database) as engine, engine.connect() as connection:
        pairs = connection.execute(
            text(
                "SELECT evaluation.run_id, program.run_id FROM evaluation "
                "JOIN program ON program.id = evaluation.program_id"
            )
        ).all()
        schema = inspect(connection)
        (column,) = [c for c in schema.get_columns("evaluation") if c["name"] == "run_id"]
        foreign_keys = {
            (key["referred_table"], *key["constrained_columns"], *key["referred_columns"])
            for key in schema.get_foreign_keys("evaluation")
        }
    assert len(pairs) == 4 and all(copied == owner for copied, owner in pairs)
    assert column["nullable"] is False
    assert ("run", "run_id", "id") in foreign_keys


def test_migrations_match_models(database: str | Path) -> None:
    Store.open(database).close()
    with _engine(database) as engine, engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrations_downgrade_and_upgrade_again(database: str | Path) -> None:
    Store.open(database).close()
    config = alembic_config()
    with _engine(database) as engine:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == ["alembic_version"]
    with Store.open(database) as store:
        assert store.revision() == head_revision()


def test_migrations_not_rerun_on_current_database(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.create_run("Pong", PONG_ENV)
    before = db_path.read_bytes()
    with Store.open(db_path, create=False) as store:
        store.runs()
    assert db_path.read_bytes() == before
