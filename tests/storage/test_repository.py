"""`Store`: recording programs, evaluations, LLM calls and events; dedup; revert."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import InvalidInputError, LlmExchange, NotFoundError, StorageError, Store, env_key
from storage.models import Evaluation, Program, Trace
from tests.storage.factories import PONG_ENV, policy, rejected_result, result

PONG_KEY = env_key("Pong", PONG_ENV)


def _count(store: Store, model: type) -> int:
    with store._read() as session:
        count = session.scalar(select(func.count()).select_from(model))
    assert count is not None
    return count


def test_repository_create_run_logs_run_started(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV, {"iterations": 20})
    loaded = store.get_run(run.id)
    assert (loaded.game, loaded.status, loaded.config) == ("Pong", "running", {"iterations": 20})
    assert loaded.head_program_id is None and len(run.id) == 32
    assert [event.kind for event in store.events(run.id)] == ["run_started"]


def test_repository_add_program_dedups_identical_source(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    first = store.add_program(run.id, policy(1), origin="seed")
    again = store.add_program(run.id, policy(1), origin="llm", parent_id=first.id)
    assert again.id == first.id and again.origin == "seed"
    found = store.find_program(run.id, policy(1))
    assert found is not None and found.id == first.id
    other_run = store.create_run("Pong", PONG_ENV)
    elsewhere = store.add_program(other_run.id, policy(1), origin="seed")
    assert elsewhere.id != first.id  # dedup is per run
    assert _count(store, Program) == 2


def test_repository_add_program_sets_generation_from_parents(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    root = store.add_program(run.id, policy(0), origin="seed")
    child = store.add_program(run.id, policy(1), parent_id=root.id)
    grandchild = store.add_program(run.id, policy(2), parent_id=child.id)
    crossed = store.add_program(
        run.id, policy(3), origin="mutation", parent_id=root.id, second_parent_id=grandchild.id
    )
    assert [p.generation for p in (root, child, grandchild, crossed)] == [0, 1, 2, 3]
    assert store.get_program(crossed.id).second_parent_id == grandchild.id


def test_repository_add_program_refuses_bad_input(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    other = store.create_run("Pong", PONG_ENV)
    foreign = store.add_program(other.id, policy(9), origin="seed")
    with pytest.raises(InvalidInputError, match="origin 'dream'"):
        store.add_program(run.id, policy(1), origin="dream")
    with pytest.raises(InvalidInputError, match="non-empty"):
        store.add_program(run.id, "  \n")
    with pytest.raises(NotFoundError, match="no program matches"):
        store.add_program(run.id, policy(1), parent_id="f" * 32)
    with pytest.raises(InvalidInputError, match="belongs to run"):
        store.add_program(run.id, policy(1), parent_id=foreign.id)
    with pytest.raises(NotFoundError, match="no run matches"):
        store.add_program("e" * 32, policy(1))
    assert _count(store, Program) == 1


def test_repository_record_evaluation_stores_columns_and_traces(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    program = store.add_program(run.id, policy(1), origin="seed")
    data = result([-21.0, -17.0], lengths=[700, 900], trace_steps=900)
    evaluation = store.record_evaluation(program.id, data)
    loaded = store.get_evaluation(evaluation.id)
    assert loaded.mean_return == -19.0 and loaded.total_steps == 1600
    assert loaded.status == "ok" and loaded.backend == "bwrap" and loaded.seeds == [0, 1]
    assert loaded.episodes[1]["return"] == -17.0 and "trace" not in loaded.episodes[1]
    traces = store.traces(evaluation.id)
    assert [(t.episode, t.seed, t.steps) for t in traces] == [(0, 0, 700), (1, 1, 900)]
    assert traces[1].data == data["episodes"][1]["trace"]
    assert all(t.stored_bytes < t.raw_bytes for t in traces)


def test_repository_record_evaluation_copies_the_program_run(store: Store) -> None:
    runs = [store.create_run("Pong", PONG_ENV) for _ in range(2)]
    programs = [store.add_program(run.id, policy(1), origin="seed") for run in runs]
    for run, program in zip(runs, programs, strict=True):
        evaluation = store.record_evaluation(program.id, result())
        assert store.get_evaluation(evaluation.id).run_id == run.id


def test_repository_record_evaluation_keeps_seeds_beyond_32_bits(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    program = store.add_program(run.id, policy(1), origin="seed")
    seeds = [2**31, 2**40]
    evaluation = store.record_evaluation(program.id, result([1.0, 2.0], seeds=seeds))
    assert store.get_evaluation(evaluation.id).seeds == seeds
    assert [trace.seed for trace in store.traces(evaluation.id)] == seeds


def test_repository_record_evaluation_takes_separate_traces(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    program = store.add_program(run.id, policy(1), origin="seed")
    evaluation = store.record_evaluation(
        program.id, result([1.0, 2.0], trace_steps=None), traces=[{"actions": "01"}, None]
    )
    assert [(t.episode, t.data) for t in store.traces(evaluation.id)] == [(0, {"actions": "01"})]


def test_repository_record_evaluation_caps_trace_size(database: str | Path) -> None:
    with Store.open(database, trace_cap_bytes=2_000) as store:
        run = store.create_run("Pong", PONG_ENV)
        program = store.add_program(run.id, policy(1), origin="seed")
        evaluation = store.record_evaluation(program.id, result(trace_steps=5000))
        (trace,) = store.traces(evaluation.id)
        assert trace.truncated and trace.stored_bytes <= 2_000
        assert trace.data["storage_truncated"] is True
        assert len(trace.data["actions"]) == 5000  # the action log is never cut


def test_repository_evaluation_and_traces_are_one_transaction(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    program = store.add_program(run.id, policy(1), origin="seed")
    data = result([1.0, 2.0])
    data["episodes"][1]["trace"] = {"actions": "0", "bad": {1, 2}}  # not JSON
    with pytest.raises(InvalidInputError, match="not plain JSON"):
        store.record_evaluation(program.id, data)
    with pytest.raises(NotFoundError):
        store.record_evaluation("0" * 32, result())
    # a failure inside the transaction (the second trace row breaks a constraint) leaves nothing
    with pytest.raises(StorageError, match=r"(?i)unique"), store._write() as session:
        evaluation = Evaluation(program_id=program.id, run_id=run.id, status="ok", **_columns())
        session.add(evaluation)
        session.flush()
        for _ in range(2):
            session.add(
                Trace(
                    evaluation_id=evaluation.id,
                    episode=0,
                    seed=0,
                    steps=1,
                    data=b"x",
                    raw_bytes=1,
                    stored_bytes=1,
                )
            )
    assert _count(store, Evaluation) == 0 and _count(store, Trace) == 0


def _columns() -> dict:
    return {
        "game": "Pong",
        "env": PONG_ENV,
        "env_key": PONG_KEY,
        "seeds": [0],
        "seeds_key": "0",
        "episodes": [],
        "backend": "bwrap",
    }


def test_repository_find_evaluation_reuses_matching_result(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    program = store.add_program(run.id, policy(1), origin="seed")
    assert store.find_evaluation(program.id, PONG_KEY, [0, 1]) is None
    recorded = store.record_evaluation(program.id, result([3.0, 5.0]))
    found = store.find_evaluation(program.id, PONG_KEY, [0, 1])
    assert found is not None and found.id == recorded.id and found.mean_return == 4.0
    assert store.find_evaluation(program.id, PONG_KEY, [1, 0]) is None
    assert store.find_evaluation(program.id, PONG_KEY, [0]) is None
    assert store.find_evaluation(program.id, env_key("Pong", {"frameskip": 4}), [0, 1]) is None


def test_repository_find_evaluation_skips_crashed_and_reuses_rejected(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    flaky = store.add_program(run.id, policy(1), origin="seed")
    store.record_evaluation(flaky.id, result([0.0], status="crashed"))
    assert store.find_evaluation(flaky.id, PONG_KEY, [0]) is None
    broken = store.add_program(run.id, "import os\n", origin="llm", parent_id=flaky.id)
    rejected = store.record_evaluation(broken.id, rejected_result(), seeds=[0, 1, 2])
    for key, seeds in ((PONG_KEY, [0, 1, 2]), (env_key("Breakout", {}), [7])):
        found = store.find_evaluation(broken.id, key, seeds)
        assert found is not None and found.id == rejected.id
    assert store.traces(rejected.id) == []


def test_repository_revert_then_continue_builds_on_reverted_program(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    seed = store.add_program(run.id, policy(0), origin="seed")
    store.set_head(run.id, seed.id)
    good = store.add_program(run.id, policy(1), parent_id=seed.id)
    store.set_head(run.id, good.id)
    worse = store.add_program(run.id, policy(2), parent_id=good.id)
    store.record_evaluation(worse.id, result([-21.0]))
    store.set_head(run.id, worse.id)

    reverted = store.revert(run.id, good.id)
    assert reverted.head_program_id == good.id == store.get_run(run.id).head_program_id
    (event,) = [event for event in store.events(run.id) if event.kind == "revert"]
    assert event.data == {"from": worse.id, "to": good.id}

    # the next iteration builds on the head
    head = store.get_run(run.id).head_program_id
    following = store.add_program(run.id, policy(3), parent_id=head)
    assert following.parent_id == good.id and following.generation == 2
    # nothing lost
    assert len(store.history(run.id)) == 4
    assert store.get_program(worse.id).source == policy(2)
    assert len(store.evaluations(worse.id)) == 1


def test_repository_revert_refuses_program_of_another_run(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    other = store.create_run("Pong", PONG_ENV)
    foreign = store.add_program(other.id, policy(1), origin="seed")
    with pytest.raises(InvalidInputError, match="belongs to run"):
        store.revert(run.id, foreign.id)
    assert store.get_run(run.id).head_program_id is None
    assert [event.kind for event in store.events(run.id)] == ["run_started"]


def test_repository_set_status_logs_event(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    store.set_status(run.id, "stopped", "budget spent")
    store.set_status(run.id, "running")
    assert store.get_run(run.id).status == "running"
    events = store.events(run.id)
    assert [e.kind for e in events] == ["run_started", "run_stopped", "run_resumed"]
    assert events[1].message == "budget spent"
    with pytest.raises(InvalidInputError, match="run status"):
        store.set_status(run.id, "paused")  # type: ignore[arg-type]  # what untyped callers may do


def test_repository_set_status_keeps_a_resumes_config_changes_in_its_event(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV, {"iterations": 20, "ray_address": "10.0.0.1:6379"})
    changed = {"iterations": (20, 40), "ray_address": ("10.0.0.1:6379", "10.0.0.2:6379")}
    store.set_status(run.id, "running", "resumed", config_changed=changed)
    store.set_status(run.id, "stopped", config_changed={})  # nothing changed: nothing said
    resumed, stopped = store.events(run.id)[-2:]
    assert resumed.data == {
        "from": "running",
        "to": "running",
        "config_changed": {
            "iterations": [20, 40],
            "ray_address": ["10.0.0.1:6379", "10.0.0.2:6379"],
        },
    }
    assert resumed.message == (
        "resumed (iterations 20 -> 40, ray_address 10.0.0.1:6379 -> 10.0.0.2:6379)"
    )
    assert stopped.data == {"from": "running", "to": "stopped"}
    assert stopped.message == "status running -> stopped"
    assert store.get_run(run.id).config["iterations"] == 20  # the row as created


def test_repository_records_llm_calls_and_events(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    parent = store.add_program(run.id, policy(0), origin="seed")
    child = store.add_program(run.id, policy(1), parent_id=parent.id)
    store.record_llm_call(
        run.id,
        LlmExchange(
            prompt="improve this",
            response="```python\n...```",
            model="gpt-x",
            tokens_in=1200,
            tokens_out=300,
            latency_seconds=4.5,
            cost=0.01,
        ),
        parent_program_id=parent.id,
        produced_program_id=child.id,
    )
    store.record_llm_call(run.id, LlmExchange(prompt="again", model="gpt-x", error="rate limited"))
    calls = store.llm_calls(run.id)
    assert [call.produced_program_id for call in calls] == [child.id, None]
    assert calls[1].error == "rate limited" and calls[0].tokens_out == 300
    store.add_event(run.id, "budget_hit", "20 iterations", {"iterations": 20})
    store.add_event(None, "crash_recovery", "found a dangling run")
    assert store.events(run.id)[-1].data == {"iterations": 20}
    assert [event.kind for event in store.events()][-1] == "crash_recovery"
    with pytest.raises(InvalidInputError, match="snake_case"):
        store.add_event(run.id, "Budget Hit!")  # type: ignore[arg-type]  # untyped callers may


def test_repository_dedup_holds_across_two_open_stores(database: str | Path) -> None:
    with Store.open(database) as first, Store.open(database) as second:
        run = first.create_run("Pong", PONG_ENV)
        a = first.add_program(run.id, policy(1), origin="seed")
        b = second.add_program(run.id, policy(1), origin="llm")
        assert a.id == b.id and b.origin == "seed"


def test_repository_add_program_survives_a_concurrent_duplicate_insert(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL two writers can both miss the lookup; the unique key then decides.
    run = store.create_run("Pong", PONG_ENV)
    existing = store.add_program(run.id, policy(1), origin="seed")
    real = Store._by_digest
    calls = iter([True])

    def miss_once(session: Session, run_id: str, digest: str) -> Program | None:
        return None if next(calls, False) else real(session, run_id, digest)

    monkeypatch.setattr(Store, "_by_digest", staticmethod(miss_once))
    again = store.add_program(run.id, policy(1), origin="llm")
    assert again.id == existing.id
    assert _count(store, Program) == 1
