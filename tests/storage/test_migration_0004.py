"""Migration 0004: existing prompts move to llm_prompt, once per text, and back on downgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import func, insert, inspect, select, text

from storage import LlmExchange, Store
from storage.db import alembic_config, head_revision
from storage.models import LlmPrompt
from tests.storage.test_migrations import _engine, _insert, _migrate_to, _table

RUN_ID = "e" * 32
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
PROMPTS = ["prompt A " * 1000, "prompt B " * 1000, "prompt C with ünïcode " * 10]
CALLS = 1_100  # more than one batch of the migration


def _call_id(number: int) -> str:
    return f"{number:032x}"


def _fill_revision_0003(database: str | Path) -> None:
    with _engine(database) as engine, engine.begin() as connection:
        _insert(
            connection,
            "run",
            id=RUN_ID,
            game="Pong",
            env={},
            config={},
            status="running",
            head_program_id=None,
            created_at=NOW,
            updated_at=NOW,
        )
        calls = [
            {
                "id": _call_id(number),
                "run_id": RUN_ID,
                "parent_program_id": None,
                "prompt": _expected_prompt(number),
                "response": f"answer {number}",
                "model": "m",
                "tokens_in": 10,
                "tokens_out": 5,
                "latency_seconds": 1.0,
                "cost": 0.01,
                "error": None,
                "produced_program_id": None,
                "created_at": NOW + timedelta(microseconds=number),
            }
            for number in range(CALLS)
        ]
        connection.execute(insert(_table(connection, "llm_call")), calls)


def _expected_prompt(number: int) -> str:
    return PROMPTS[number % 3 if number % 10 else 0]


def test_migration_0004_moves_prompts_out_once_each(database: str | Path) -> None:
    _migrate_to(database, "0003")
    _fill_revision_0003(database)
    with Store.open(database) as store:
        assert store.revision() == head_revision()
        calls = store.llm_calls(RUN_ID)
        assert len(calls) == CALLS
        by_id = {call.id: call for call in calls}
        assert all(by_id[_call_id(n)].prompt == _expected_prompt(n) for n in range(CALLS))
        assert all(call.response_truncated_bytes == 0 for call in calls)
        with store._read() as session:
            assert session.scalar(select(func.count()).select_from(LlmPrompt)) == 3
        # a new call with an old prompt reuses its row
        store.record_llm_call(RUN_ID, LlmExchange(prompt=PROMPTS[1], model="m"))
        with store._read() as session:
            assert session.scalar(select(func.count()).select_from(LlmPrompt)) == 3
        usage = store.run_usage(RUN_ID)
        assert (usage.calls, usage.tokens_in) == (CALLS + 1, CALLS * 10)


def test_migration_0004_downgrade_puts_prompts_back(database: str | Path) -> None:
    _migrate_to(database, "0003")
    _fill_revision_0003(database)
    Store.open(database).close()
    config = alembic_config()
    with _engine(database) as engine:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        with engine.connect() as connection:
            assert "llm_prompt" not in inspect(connection).get_table_names()
            rows: dict[str, str] = {
                row[0]: row[1]
                for row in connection.execute(text("SELECT id, prompt FROM llm_call"))
            }
    assert len(rows) == CALLS
    assert all(rows[_call_id(n)] == _expected_prompt(n) for n in range(CALLS))
