"""Lineage, best-of, history, runs listing, diff and short-id resolution."""

from __future__ import annotations

import gc
import random

import pytest
from sqlalchemy.orm import Session

from storage import AmbiguousIdError, NotFoundError, Store, queries
from storage.models import Program
from storage.queries import scores, walk
from tests.storage.factories import PONG_ENV, policy, rejected_result, result

HEX = "0123456789abcdef"


def _tree(store: Store) -> tuple[str, dict[str, str]]:
    """A branching tree, plus a program in another run that must never appear.

    root ─┬─ a ── a1 ── a2
          ├─ b ─┬─ b1
          │     └─ b2
          └─ c
    """
    run = store.create_run("Pong", PONG_ENV)
    ids: dict[str, str] = {}

    def add(name: str, parent: str | None) -> None:
        program = store.add_program(
            run.id,
            policy(len(ids)),
            origin="seed" if parent is None else "llm",
            parent_id=ids[parent] if parent else None,
        )
        ids[name] = program.id

    for name, parent in [
        ("root", None),
        ("a", "root"),
        ("b", "root"),
        ("a1", "a"),
        ("b1", "b"),
        ("c", "root"),
        ("a2", "a1"),
        ("b2", "b"),
    ]:
        add(name, parent)
    other = store.create_run("Pong", PONG_ENV)
    store.add_program(other.id, policy(99), origin="seed")
    return run.id, ids


def test_queries_ancestors_run_from_parent_back_to_root(store: Store) -> None:
    _, ids = _tree(store)
    names = {value: key for key, value in ids.items()}
    chain = store.ancestors(ids["a2"])
    assert [names[node.program_id] for node in chain] == ["a1", "a", "root"]
    assert [node.depth for node in chain] == [1, 2, 3]
    assert store.ancestors(ids["root"]) == []


def test_queries_descendants_cover_every_branch(store: Store) -> None:
    _, ids = _tree(store)
    names = {value: key for key, value in ids.items()}
    below_root = store.descendants(ids["root"])
    assert sorted(names[node.program_id] for node in below_root) == sorted(
        ["a", "b", "c", "a1", "b1", "b2", "a2"]
    )
    assert [node.depth for node in below_root] == sorted(node.depth for node in below_root)
    assert {names[node.program_id] for node in store.descendants(ids["b"])} == {"b1", "b2"}
    assert store.descendants(ids["a2"]) == []


def test_queries_lineage_carries_scores(store: Store) -> None:
    _, ids = _tree(store)
    store.record_evaluation(ids["a"], result([-10.0]))
    store.record_evaluation(ids["a"], result([30.0], status="error"))
    store.record_evaluation(ids["a1"], rejected_result(), seeds=[0])
    lineage = store.lineage(ids["a1"])
    assert lineage.program.status == "rejected" and lineage.program.mean_return is None
    parent = lineage.ancestors[0]
    assert (parent.mean_return, parent.status) == (-10.0, "ok")  # ok beats a higher error
    assert lineage.ancestors[1].status is None  # root never evaluated
    assert [node.program_id for node in lineage.descendants] == [ids["a2"]]
    with pytest.raises(NotFoundError):
        store.lineage("0" * 32)


def _random_forest(store: Store, programs: int = 60, seed: int = 7) -> tuple[str, list[str]]:
    """A run of a few random trees; 0-3 evaluations per program, with ties on score and steps."""
    rng = random.Random(seed)
    run = store.create_run("Pong", PONG_ENV)
    ids: list[str] = []
    for number in range(programs):
        parent = rng.choice(ids[-8:]) if ids and rng.random() < 0.9 else None
        program = store.add_program(
            run.id, policy(number), origin="llm" if parent else "seed", parent_id=parent
        )
        ids.append(program.id)
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            if rng.random() < 0.15:
                store.record_evaluation(program.id, rejected_result(), seeds=[0])
            else:
                store.record_evaluation(
                    program.id,
                    result(
                        [float(rng.randint(-2, 2))],
                        lengths=[rng.choice([800, 900])],
                        status=rng.choice(["ok", "ok", "error"]),
                        trace_steps=None,
                    ),
                )
    return run.id, ids


def test_queries_lineage_plans_agree_on_every_program(store: Store) -> None:
    run_id, ids = _random_forest(store)
    with store._read() as session:
        for program_id in ids:
            for up in (True, False):
                in_sql = walk._walk_sql(session, program_id, up=up)
                in_python = walk._walk_run(session, run_id, program_id, up=up)
                assert in_python == in_sql


def test_queries_lineage_plan_follows_walk_length(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walk, "SCAN_MIN_PROGRAMS", 10)
    run = store.create_run("Pong", PONG_ENV)
    chain = [store.add_program(run.id, policy(0), origin="seed").id]
    for number in range(1, 12):
        chain.append(store.add_program(run.id, policy(number), parent_id=chain[-1]).id)
    twig = store.add_program(run.id, policy(99), parent_id=chain[0]).id
    scans: list[str] = []
    walk_run = walk._walk_run

    def spy(
        session: Session, run_id: str, program_id: str, *, up: bool
    ) -> list[queries.LineageNode] | None:
        scans.append(program_id)
        return walk_run(session, run_id, program_id, up=up)

    monkeypatch.setattr(walk, "_walk_run", spy)
    # 13 programs: a walk of 4 or more (a third) reads the run, a shorter one stays in SQL
    assert [node.program_id for node in store.ancestors(chain[-1])] == chain[-2::-1]
    below_root = store.descendants(chain[0])
    assert [node.program_id for node in below_root] == [chain[1], twig, *chain[2:]]
    assert [node.depth for node in below_root] == [1, 1, *range(2, 12)]
    assert scans == [chain[-1], chain[0]]
    assert [node.program_id for node in store.ancestors(twig)] == [chain[0]]
    assert [node.program_id for node in store.descendants(chain[-3])] == chain[-2:]
    assert scans == [chain[-1], chain[0]]


def test_queries_lineage_that_leaves_its_run_is_walked_in_sql(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walk, "SCAN_MIN_PROGRAMS", 1)
    home = store.create_run("Pong", PONG_ENV)
    elsewhere = store.create_run("Pong", PONG_ENV)
    root = store.add_program(home.id, policy(0), origin="seed")
    with store._write() as session:  # add_program refuses a parent in another run
        session.add(
            Program(
                id="f" * 32,
                run_id=elsewhere.id,
                source=policy(1),
                sha256="f" * 64,
                parent_id=root.id,
                origin="llm",
                generation=1,
            )
        )
    with store._read() as session:
        assert walk._walk_run(session, elsewhere.id, "f" * 32, up=True) is None
    (parent,) = store.ancestors("f" * 32)
    assert (parent.program_id, parent.run_id, parent.depth) == (root.id, home.id, 1)


def test_queries_history_picks_each_programs_best_evaluation(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    names = ["ok_beats_error", "fewer_steps", "older", "once", "rejected", "never"]
    ids = {
        name: store.add_program(run.id, policy(n), origin="seed").id for n, name in enumerate(names)
    }
    expected: dict[str, str | None] = {}
    store.record_evaluation(ids["ok_beats_error"], result([30.0], status="error"))
    expected["ok_beats_error"] = store.record_evaluation(ids["ok_beats_error"], result([-10.0])).id
    store.record_evaluation(ids["fewer_steps"], result([5.0], lengths=[1000]))
    expected["fewer_steps"] = store.record_evaluation(
        ids["fewer_steps"], result([5.0], lengths=[800])
    ).id
    expected["older"] = store.record_evaluation(ids["older"], result([1.0])).id
    store.record_evaluation(ids["older"], result([1.0]))
    expected["once"] = store.record_evaluation(ids["once"], result([2.0], status="timeout")).id
    expected["rejected"] = store.record_evaluation(ids["rejected"], rejected_result(), seeds=[0]).id
    expected["never"] = None

    rows = store.history(run.id)
    assert [row.evaluation_id for row in rows] == [expected[name] for name in names]
    assert [row.status for row in rows] == ["ok", "ok", "ok", "timeout", "rejected", None]
    assert [row.mean_return for row in rows] == [-10.0, 5.0, 1.0, 2.0, None, None]
    assert [row.best_so_far for row in rows] == [-10.0, 5.0, 5.0, 5.0, 5.0, 5.0]


def test_queries_gc_paused_restores_the_collector() -> None:
    @scores.gc_paused
    def build(fail: bool = False) -> bool:
        if fail:
            raise RuntimeError
        return gc.isenabled()

    assert gc.isenabled()
    assert build() is False
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        build(fail=True)
    assert gc.isenabled()
    gc.disable()
    try:
        build()
        assert not gc.isenabled()  # a caller's choice stays
    finally:
        gc.enable()


def _best_id(store: Store, run_id: str, env_key: str | None = None) -> str | None:
    best = store.best_program(run_id, env_key)
    return best.program_id if best is not None else None


def test_queries_best_program_prefers_ok_then_score_then_steps_then_older(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    programs = [store.add_program(run.id, policy(n), origin="seed") for n in range(6)]
    slow, fast, fast_later, failed, rejected, mixed = (p.id for p in programs)
    store.record_evaluation(slow, result([5.0], lengths=[1000]))
    store.record_evaluation(fast_later, result([5.0], lengths=[800]))
    store.record_evaluation(fast, result([5.0], lengths=[800]))
    store.record_evaluation(failed, result([10.0], status="error"))
    store.record_evaluation(rejected, rejected_result(), seeds=[0])
    store.record_evaluation(mixed, result([4.0]))
    best = store.best_program(run.id)
    # fast and fast_later tie on score and steps: the older program (fast) wins,
    # although its evaluation was recorded later
    assert best is not None and best.program_id == fast
    assert (best.mean_return, best.total_steps, best.status) == (5.0, 800, "ok")

    store.record_evaluation(mixed, result([7.0], lengths=[5000]))
    assert _best_id(store, run.id) == mixed


def test_queries_best_program_falls_back_to_failed_evaluations(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    low = store.add_program(run.id, policy(0), origin="seed")
    high = store.add_program(run.id, policy(1), origin="seed")
    assert store.best_program(run.id) is None
    store.record_evaluation(low.id, result([-3.0], status="timeout"))
    store.record_evaluation(high.id, result([2.0], status="invalid_action"))
    best = store.best_program(run.id)
    assert best is not None and (best.program_id, best.status) == (high.id, "invalid_action")


def test_queries_best_program_by_env_key(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    a = store.add_program(run.id, policy(0), origin="seed")
    b = store.add_program(run.id, policy(1), origin="seed")
    store.record_evaluation(a.id, result([9.0], env={"frameskip": 4}))
    store.record_evaluation(b.id, result([1.0]))
    from storage import env_key

    # Without a key, the run's own setting wins over a higher score under another setting.
    assert _best_id(store, run.id) == b.id
    assert _best_id(store, run.id, env_key("Pong", PONG_ENV)) == b.id
    assert _best_id(store, run.id, env_key("Pong", {"frameskip": 4})) == a.id


def test_queries_history_lists_programs_in_creation_order(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    seed = store.add_program(run.id, policy(0), origin="seed")
    store.record_evaluation(seed.id, result([-21.0]))
    better = store.add_program(run.id, policy(1), parent_id=seed.id)
    store.record_evaluation(better.id, result([-5.0]))
    broken = store.add_program(run.id, "import os\n", parent_id=better.id)
    store.record_evaluation(broken.id, rejected_result(), seeds=[0])
    worse = store.add_program(run.id, policy(2), parent_id=better.id, origin="mutation")
    store.record_evaluation(worse.id, result([-9.0]))
    pending = store.add_program(run.id, policy(3), parent_id=worse.id)

    rows = store.history(run.id)
    assert [row.program_id for row in rows] == [seed.id, better.id, broken.id, worse.id, pending.id]
    assert [row.generation for row in rows] == [0, 1, 2, 2, 3]
    assert [row.origin for row in rows] == ["seed", "llm", "llm", "mutation", "llm"]
    assert [row.status for row in rows] == ["ok", "ok", "rejected", "ok", None]
    assert [row.mean_return for row in rows] == [-21.0, -5.0, None, -9.0, None]
    assert [row.best_so_far for row in rows] == [-21.0, -5.0, -5.0, -5.0, -5.0]


def test_queries_runs_listing_counts_and_best(store: Store) -> None:
    empty = store.create_run("Breakout", {})
    run = store.create_run("Pong", PONG_ENV)
    a = store.add_program(run.id, policy(0), origin="seed")
    b = store.add_program(run.id, policy(1), parent_id=a.id)
    store.record_evaluation(a.id, result([-4.0]))
    store.record_evaluation(b.id, result([12.0], status="error"))
    store.set_head(run.id, b.id)
    summaries = {summary.run_id: summary for summary in store.runs()}
    assert list(summaries) == [empty.id, run.id]
    assert (summaries[empty.id].programs, summaries[empty.id].evaluations) == (0, 0)
    assert summaries[empty.id].best_mean_return is None
    pong = summaries[run.id]
    assert (pong.programs, pong.evaluations, pong.best_mean_return) == (2, 2, -4.0)
    assert pong.head_program_id == b.id and pong.game == "Pong"


def test_queries_diff_is_unified_and_named_by_short_ids(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    a = store.add_program(run.id, "def act(obs):\n    return 0", origin="seed")
    b = store.add_program(run.id, "def act(obs):\n    return 3\n", parent_id=a.id)
    text = store.diff(a.id, b.id)
    assert text.startswith(f"--- a/{a.id[:8]}\n+++ b/{b.id[:8]}\n")
    assert "-    return 0\n+    return 3\n" in text
    assert store.diff(a.id, a.id) == ""


def test_queries_resolve_short_ids(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    programs = [store.add_program(run.id, policy(n), origin="seed") for n in range(20)]
    target = programs[0]
    assert store.resolve_program(target.id[:8]).id == target.id
    assert store.resolve_program(target.id.upper()).id == target.id
    assert store.resolve_run(run.id[:6]).id == run.id
    # 20 ids over 16 first characters: some first character is shared
    first_chars = [p.id[0] for p in programs]
    shared = next(char for char in first_chars if first_chars.count(char) > 1)
    count = first_chars.count(shared)
    with pytest.raises(AmbiguousIdError) as caught:
        store.resolve_program(shared)
    message = str(caught.value)
    assert message.startswith(f"ambiguous program id '{shared}': matches {count} programs: ")
    candidates = sorted(p.id for p in programs if p.id[0] == shared)[:5]  # the first few, listed
    assert all(f"{c[:8]} (seed program, gen 0)" in message for c in candidates)
    missing = next(
        a + b for a in HEX for b in HEX if not any(p.id.startswith(a + b) for p in programs)
    )
    for prefix in (missing, "xyz", "", "%", "a_", "0" * 33):
        with pytest.raises(NotFoundError, match=r"^no program matches"):
            store.resolve_program(prefix)
    other_run = next(a + b for a in HEX for b in HEX if not run.id.startswith(a + b))
    with pytest.raises(NotFoundError, match=f"^no run matches '{other_run}'$"):
        store.resolve_run(other_run)


def test_queries_score_under_the_runs_own_env_setting(store: Store) -> None:
    """A short smoke evaluation (other env key) never outranks a full-length one."""
    from tests.storage.factories import PONG_ENV, policy, result

    smoke_env = {**PONG_ENV, "max_steps": 300}
    run = store.create_run("Pong", PONG_ENV)
    smoked = store.add_program(run.id, policy(1), origin="seed")
    store.record_evaluation(smoked.id, result([1.0], env=smoke_env, lengths=[300]))
    store.record_evaluation(smoked.id, result([-12.0, -14.0]))
    steady = store.add_program(run.id, policy(2), parent_id=smoked.id)
    store.record_evaluation(steady.id, result([1.0], env=smoke_env, lengths=[300]))
    store.record_evaluation(steady.id, result([-10.0, -10.0]))

    best = store.best_program(run.id)
    assert best is not None and best.program_id == steady.id and best.mean_return == -10.0
    by_program = {row.program_id: row.mean_return for row in store.history(run.id)}
    assert by_program == {smoked.id: -13.0, steady.id: -10.0}
    (summary,) = store.runs()
    assert summary.best_mean_return == -10.0 and summary.evaluations == 4
    lineage = store.lineage(steady.id)
    assert lineage.program.mean_return == -10.0
    assert [node.mean_return for node in lineage.ancestors] == [-13.0]
