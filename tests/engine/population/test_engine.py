"""The population engine's logic over a fake episode runner: ordering, concurrency, islands,
held-out promotion, stop requests, and resume from a kill at every write. No sandbox here: the
sandbox path is tested end to end in tests/engine/test_loop.py."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.config import RunConfig
from engine.loop import StopRequest, optimize
from engine.proposers.base import Proposal, ProposalContext, ProposerName
from engine.proposers.mutate import MutationProposer
from sandbox.episodes import EpisodeRequest
from sandbox.results import EpisodeResult
from storage import Store, env_key, holdout_env_key
from tests.engine.fake_runner import FakeRunner

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "sequential_loop.json"
FAST = {"episodes": 2, "max_steps": 500, "smoke_max_steps": 50, "sandbox": "none"}


def _config(**changes: Any) -> RunConfig:
    return RunConfig(**{"game": "Pong", "iterations": 6, **FAST, **changes})


def _evaluation_keys(store: Store, run_id: str) -> list[tuple[str, str, str]]:
    return [
        (e.program_id, e.env_key, e.seeds_key)
        for row in store.history(run_id)
        for e in store.evaluations(row.program_id)
    ]


def _iterations(store: Store, run_id: str) -> list[int]:
    return [int((e.data or {})["iteration"]) for e in store.events(run_id) if e.kind == "iteration"]


@pytest.mark.parametrize("selection", ["greedy", "follow"])
def test_one_candidate_one_island_reproduces_the_sequential_loop(
    tmp_path: Path, selection: str
) -> None:
    """The sequence the sequential loop (before this engine) made, recorded in GOLDEN from that
    loop over the same fake runner: same programs, same parents, same best, same rollbacks."""
    golden = json.loads(GOLDEN.read_text())[selection]
    config = _config(
        iterations=30,
        mutation_seed=7,
        selection=selection,
        regress_patience=3,
        concurrency=1,
        islands=1,
        holdout_episodes=0,
    )
    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(store, config, MutationProposer(seed=7), runner=FakeRunner())
        rows = store.history(outcome.run_id)
        sha = {row.program_id: store.get_program(row.program_id).sha256 for row in rows}
        programs = [[sha[r.program_id], sha.get(r.parent_id or "")] for r in rows]
        rollbacks = [e for e in store.events(outcome.run_id) if e.kind == "rollback"]
        head = store.get_run(outcome.run_id).head_program_id
    assert programs == [[a, b] for a, b in golden["programs"]]
    assert sha[outcome.best_program_id or ""] == golden["best"]
    assert outcome.best_mean == golden["best_mean"]
    assert sha[head or ""] == golden["head"]
    assert len(rollbacks) == sum(kind == "revert" for kind, _ in golden["events"])


def _run_in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["outcome"] = target()
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, box


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 60  # generous: a loaded machine
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def test_every_slot_plays_while_episodes_wait(tmp_path: Path) -> None:
    runner = FakeRunner(slots=2)
    runner.gate = threading.Semaphore(0)
    with Store.open(tmp_path / "run.db") as store:
        thread, box = _run_in_thread(
            lambda: optimize(store, _config(concurrency=3), MutationProposer(), runner=runner)
        )
        _wait_for(lambda: runner.running == 1, "the seed's smoke episode")
        runner.gate.release()
        _wait_for(lambda: runner.running == 2, "both slots busy with the seed's training")
        for _ in range(400):
            runner.gate.release()
        thread.join(120)
    assert "error" not in box, box.get("error")
    assert box["outcome"].reason == "iterations" and box["outcome"].iterations == 6
    assert runner.peak_running == 2  # never more episodes than slots


def test_the_queue_keeps_every_slot_busy_and_serves_by_priority() -> None:
    from engine.population.scheduler import EpisodeQueue
    from sandbox.episodes import EpisodeRequest
    from sandbox.settings import EnvSettings, Limits

    runner = FakeRunner(slots=2)
    runner.gate = threading.Semaphore(0)
    done: list[Any] = []
    episodes = EpisodeQueue(runner, lambda tag, outcome: done.append(tag))
    request = EpisodeRequest("def act(obs):\n    return 0\n", "Pong", 0, EnvSettings(), Limits())
    try:
        for priority in (5, 4):
            episodes.submit((priority,), dataclasses.replace(request, seed=priority), priority)
        _wait_for(lambda: runner.running == 2, "two slots playing")
        for priority in (3, 2, 1):
            episodes.submit((priority,), dataclasses.replace(request, seed=priority), priority)
        assert episodes.waiting() == 3 and len(runner.requests) == 2
        runner.gate.release()
        _wait_for(lambda: len(done) == 1 and runner.running == 2, "a freed slot refilled")
        assert episodes.waiting() == 2
        for _ in range(4):
            runner.gate.release()
        _wait_for(lambda: len(done) == 5, "all played")
        taken = [r.seed for r in runner.requests]
        assert taken[2:] == [1, 2, 3]  # waiting ones by priority, lowest first
    finally:
        episodes.close()
        runner.close()


def test_candidates_overlap_up_to_the_concurrency(tmp_path: Path) -> None:
    runner = FakeRunner(slots=2)
    seen: list[int] = []
    lock = threading.Lock()
    release = threading.Event()

    class Slow(MutationProposer):
        def propose(self, context: ProposalContext) -> Proposal:
            with lock:
                seen.append(context.iteration)
            release.wait(60)
            return super().propose(context)

    with Store.open(tmp_path / "run.db") as store:
        thread, box = _run_in_thread(
            lambda: optimize(store, _config(concurrency=3), Slow(), runner=runner)
        )
        _wait_for(lambda: len(seen) == 3, "three proposals in flight at once")
        assert sorted(seen) == [0, 1, 2]  # and no fourth while those three are out
        release.set()
        thread.join(120)
        assert "error" not in box, box.get("error")
        assert sorted(_iterations(store, box["outcome"].run_id)) == list(range(6))


def test_islands_grow_side_by_side_and_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(iterations=12, islands=2, migrate_every=4, concurrency=1)  # deterministic
    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(store, config, MutationProposer(seed=5), runner=FakeRunner())
        programs = [store.get_program(r.program_id) for r in store.history(outcome.run_id)]
        events = store.events(outcome.run_id)
    islands = Counter(p.island for p in programs if p.origin == "mutation")
    assert set(islands) == {0, 1}
    iteration_islands = Counter((e.data or {})["island"] for e in events if e.kind == "iteration")
    assert iteration_islands[0] == iteration_islands[1] == 6
    migrations = [e for e in events if e.kind == "migration"]
    assert migrations  # the islands drift apart on the fake scores: one must be worse
    for event in migrations:
        data = event.data or {}
        assert data["from"] != data["to"] and data["state"]["head_id"]
    population = [e for e in events if e.kind == "population"]
    assert len(population) == 1 and len((population[0].data or {})["islands"]) == 2
    # `evocade history` shows the islands and the migrations.
    from engine.cli import main

    assert main(["history", outcome.run_id, "--db", str(tmp_path / "run.db"), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    shown = {e["island"] for e in entries if e["kind"] == "program" and e["origin"] != "seed"}
    assert shown == {0, 1}
    assert sum(e["kind"] == "migration" for e in entries) == len(migrations)


class Scripted:
    """Proposes the given sources in order (of iteration number)."""

    name: ProposerName = "llm"  # it proposes as an LLM would (origin "llm")

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self.contexts: list[ProposalContext] = []

    def propose(self, context: ProposalContext) -> Proposal:
        self.contexts.append(context)
        index = context.iteration
        if index >= len(self.sources):
            return Proposal(None, "llm", note="out of ideas")
        return Proposal(self.sources[index], "llm", note=f"idea {index}")


def _policy(train: float, held: float | None = None) -> str:
    line = f"FAKE_HOLDOUT = {held}\n" if held is not None else ""
    return f"FAKE_SCORE = {train}\n{line}\ndef act(obs):\n    return 0\n"


def test_a_lucky_candidate_does_not_become_best(tmp_path: Path) -> None:
    seed = _policy(0.0)
    lucky, real = _policy(15.0, held=-5.0), _policy(8.0, held=8.0)
    config = _config(iterations=2, concurrency=1)
    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(
            store, config, Scripted([lucky, real]), seed_program=seed, runner=FakeRunner()
        )
        real_id = store.find_program(outcome.run_id, real)
        lucky_id = store.find_program(outcome.run_id, lucky)
        env = config.full_env().model_dump()
        confirmed = store.best_program(outcome.run_id, holdout_env_key("Pong", env))
        trained = store.best_program(outcome.run_id, env_key("Pong", env))
    assert real_id is not None and lucky_id is not None
    assert outcome.best_program_id == real_id.id
    assert outcome.best_holdout_mean == 8.0 and outcome.best_mean == 8.0
    assert confirmed is not None and confirmed.program_id == real_id.id
    assert trained is not None and trained.program_id == lucky_id.id  # training alone would lie


def test_a_program_proposed_twice_at_once_is_played_once(tmp_path: Path) -> None:
    """Two candidates in flight with one source (one stored program): the second waits for the
    first's stage and takes its stored result; no evaluation is played or stored twice. The
    order is forced: the second proposal is in the engine's inbox before the first's smoke
    episode (held at the gate) can finish."""
    twice = _policy(5.0)
    gate = threading.Event()
    second_returning = threading.Event()

    class Held(FakeRunner):
        """Holds the twice-proposed program's episodes until the test lets them go."""

        def __init__(self) -> None:
            super().__init__(slots=2)
            self.held: list[EpisodeRequest] = []

        def run(self, request: EpisodeRequest) -> EpisodeResult:
            if request.source == twice:
                self.held.append(request)
                gate.wait(120)
            return super().run(request)

    runner = Held()

    class Twice(Scripted):
        def propose(self, context: ProposalContext) -> Proposal:
            if context.iteration == 1:
                _wait_for(
                    lambda: runner.held,
                    "the first candidate's smoke episode held at the gate",
                )
                second_returning.set()
            return super().propose(context)

    proposer = Twice([twice, twice])
    config = _config(iterations=2, concurrency=2)
    with Store.open(tmp_path / "run.db") as store:
        thread, box = _run_in_thread(
            lambda: optimize(store, config, proposer, seed_program=_policy(0.0), runner=runner)
        )
        _wait_for(second_returning.is_set, "the second proposal")
        for proposing in threading.enumerate():
            if proposing.name == "propose-1":
                proposing.join(60)  # its outcome is in the inbox once the thread is done
        gate.set()
        thread.join(120)
        assert "error" not in box, box.get("error")
        run_id = box["outcome"].run_id
        keys = _evaluation_keys(store, run_id)
        decided = [e.data or {} for e in store.events(run_id) if e.kind == "iteration"]
    played = Counter((r.env.max_steps, r.seed) for r in runner.requests if r.source == twice)
    assert played and set(played.values()) == {1}, played  # smoke, training, held-out once
    assert len(keys) == len(set(keys)), keys
    assert sorted(int(d["iteration"]) for d in decided) == [0, 1]
    assert [d["status"] for d in decided] == ["ok", "ok"]


def test_first_stop_finishes_what_is_in_flight_second_abandons(tmp_path: Path) -> None:
    runner = FakeRunner(slots=2)
    runner.gate = threading.Semaphore(0)
    stop = StopRequest()
    db = tmp_path / "run.db"
    with Store.open(db) as store:
        thread, box = _run_in_thread(
            lambda: optimize(
                store, _config(iterations=50), MutationProposer(), runner=runner, stop=stop
            )
        )
        for _ in range(1 + 2 + 3):  # the seed's smoke, training and held-out episodes
            runner.gate.release()
        _wait_for(lambda: runner.running == 2 and len(runner.requests) > 6, "candidates playing")
        stop.request("received SIGTERM")
        stop.request("received SIGTERM")  # the second: abandon
        runner.close()  # what the engine's own runner does on abandon
        thread.join(120)
        assert "error" not in box, box.get("error")
        outcome = box["outcome"]
        assert "SIGTERM" in outcome.reason
        assert store.get_run(outcome.run_id).status == "stopped"
        done = _iterations(store, outcome.run_id)
    # Resume finishes the run: every iteration decided once.
    with Store.open(db) as store:
        resumed = optimize(
            store,
            _config(iterations=50),
            MutationProposer(),
            run_id=outcome.run_id,
            runner=FakeRunner(),
        )
        assert resumed.reason == "iterations"
        numbers = _iterations(store, outcome.run_id)
    assert numbers[: len(done)] == done
    assert sorted(numbers) == list(range(50))


class Killed(BaseException):
    """A simulated kill -9: from this write on, the process writes nothing."""


WRITES = (
    "add_program",
    "record_evaluation",
    "add_event",
    "set_head",
    "set_status",
    "record_llm_call",
    "link_llm_call",
    "revert",
)


class Writes:
    """Counts the store's writes; from write number `kill_at` + 1 on, raises `Killed` instead."""

    def __init__(self, store: Store, kill_at: int) -> None:
        self.kill_at, self.count = kill_at, 0
        self.lock = threading.Lock()
        for name in WRITES:
            setattr(store, name, self._wrap(getattr(store, name)))

    def _wrap(self, method: Any) -> Any:
        def write(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.count += 1
                if self.count > self.kill_at:
                    raise Killed(self.count)
            return method(*args, **kwargs)

        return write


def _failing_then_mutations() -> Any:
    class Proposer(MutationProposer):
        def propose(self, context: ProposalContext) -> Proposal:
            if context.iteration == 1:
                return Proposal("def act(obs):\n    raise RuntimeError('x')\n", "mutation")
            return super().propose(context)

    return Proposer(seed=11)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_kill_at_every_write_then_resume_loses_nothing_and_repeats_nothing(
    tmp_path: Path, concurrency: int
) -> None:
    config = _config(iterations=5, concurrency=concurrency, islands=2, migrate_every=2)
    with Store.open(tmp_path / "ref.db") as store:
        writes = Writes(store, kill_at=10**9)
        optimize(store, config, _failing_then_mutations(), runner=FakeRunner())
        total = writes.count
    for kill_at in range(1, total):
        db = tmp_path / f"kill-{kill_at}.db"
        run_id = None
        with Store.open(db) as store:
            Writes(store, kill_at=kill_at)
            with pytest.raises(Killed):
                optimize(store, config, _failing_then_mutations(), runner=FakeRunner())
            runs = store.runs()
            if runs:
                run_id = runs[0].run_id
                before = set(_evaluation_keys(store, run_id))
                decided = _iterations(store, run_id)
        if run_id is None:
            continue  # killed before the run existed: nothing to resume
        with Store.open(db) as store:
            outcome = optimize(
                store, config, _failing_then_mutations(), run_id=run_id, runner=FakeRunner()
            )
            keys = _evaluation_keys(store, run_id)
            numbers = _iterations(store, run_id)
            usage = store.run_usage(run_id)
            events = store.events(run_id)
        assert outcome.reason == "iterations", kill_at
        assert len(keys) == len(set(keys)), f"played twice after a kill at write {kill_at}"
        assert before <= set(keys), f"lost evaluations after a kill at write {kill_at}"
        assert numbers[: len(decided)] == decided
        assert sorted(numbers) == list(range(5)), f"iterations wrong after kill at {kill_at}"
        last = [e for e in events if e.kind == "iteration"][-1].data or {}
        assert last["env_steps"] == usage.env_steps  # the budget counter is the stored truth
