"""`Store.open_read_only` (what viewers use) and the read-only queries added for them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine

from storage import AmbiguousIdError, LlmExchange, NotFoundError, StorageError, Store
from storage.db import alembic_config
from tests.storage.factories import PONG_ENV, policy, result


def _filled(database: str | Path) -> tuple[str, str, str]:
    """A run with a seed program and a child, each evaluated once; (run, seed, child) ids."""
    with Store.open(database) as store:
        run = store.create_run("Pong", PONG_ENV)
        seed = store.add_program(run.id, policy(1), origin="seed")
        child = store.add_program(run.id, policy(2), origin="mutation", parent_id=seed.id)
        store.record_evaluation(seed.id, result([1.0, 2.0]))
        store.record_evaluation(child.id, result([3.0, 4.0]))
        store.record_llm_call(
            run.id,
            LlmExchange(prompt="feedback on the seed", model="m", response="r"),
            parent_program_id=seed.id,
            produced_program_id=child.id,
        )
    return run.id, seed.id, child.id


def test_read_only_store_reads_and_refuses_every_write(database: str | Path) -> None:
    run_id, seed_id, child_id = _filled(database)
    with Store.open_read_only(database) as store:
        assert [row.program_id for row in store.history(run_id)] == [seed_id, child_id]
        with pytest.raises(StorageError):
            store.create_run("Pong", PONG_ENV)
        with pytest.raises(StorageError):
            store.add_event(run_id, "note", "a viewer must not write")  # type: ignore[arg-type]  # no writer uses it
        with pytest.raises(StorageError):
            store.set_head(run_id, child_id)
    with Store.open(database) as store:
        assert len(store.runs()) == 1
        assert not [event for event in store.events(run_id) if event.kind == "note"]


def test_read_only_store_leaves_the_sqlite_file_byte_for_byte(db_path: Path) -> None:
    run_id, _, _ = _filled(db_path)
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    with Store.open_read_only(db_path) as store:
        store.history(run_id)
        with pytest.raises(StorageError):
            store.add_event(run_id, "note")  # type: ignore[arg-type]  # any kind: refused
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before


def test_read_only_store_refuses_a_missing_or_outdated_database(db_path: Path) -> None:
    with pytest.raises(NotFoundError):
        Store.open_read_only(db_path)
    assert not db_path.exists()
    _filled(db_path)
    engine = create_engine(f"sqlite:///{db_path}")
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    engine.dispose()
    with pytest.raises(StorageError, match="behind"):
        Store.open_read_only(db_path)


def test_repository_resolves_evaluations_and_lists_a_runs_evaluations(
    database: str | Path,
) -> None:
    run_id, seed_id, child_id = _filled(database)
    with Store.open(database) as store:
        evaluations = store.run_evaluations(run_id)
        assert [e.program_id for e in evaluations] == [seed_id, child_id]
        found = store.resolve_evaluation(evaluations[1].id[:10])
        assert found.id == evaluations[1].id and found.mean_return == 3.5
        with pytest.raises(NotFoundError):
            store.resolve_evaluation("ffffffffffff")
        with pytest.raises((NotFoundError, AmbiguousIdError)):
            store.resolve_evaluation("")
        sizes = store.trace_sizes(evaluations[0].id)
        assert [episode for episode, _, _ in sizes] == [0, 1]
        assert all(stored > 0 and not truncated for _, stored, truncated in sizes)


def test_repository_program_llm_calls_split_produced_and_built_on(database: str | Path) -> None:
    _, seed_id, child_id = _filled(database)
    with Store.open(database) as store:
        produced, built_on = store.program_llm_calls(child_id)
        assert [call.prompt for call in produced] == ["feedback on the seed"] and not built_on
        produced, built_on = store.program_llm_calls(seed_id)
        assert not produced and [call.produced_program_id for call in built_on] == [child_id]
        with pytest.raises(NotFoundError):
            store.program_llm_calls("0" * 32)
