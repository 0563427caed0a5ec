"""The optimization loop end to end: real sandbox, real SQLite file, real openai client over HTTP
to a scripted server. Pong episodes are capped short so each run takes seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.config import RunConfig
from engine.loop import StopRequest, optimize
from engine.proposers.base import Proposal, ProposalContext
from engine.proposers.llm import LlmProposer
from engine.proposers.mutate import MutationProposer
from storage import Store
from tests.engine.scripted_llm import DEFAULT_PROGRAM, Answer, Hang, Status

pytestmark = pytest.mark.bwrap

REPO = Path(__file__).resolve().parents[2]
SHORT = {"episodes": 2, "max_steps": 1200, "smoke_max_steps": 150, "sandbox": "bwrap"}


def _config(**changes) -> RunConfig:
    return RunConfig(**{"game": "Pong", "iterations": 4, **SHORT, **changes})


def _evaluation_keys(store: Store, run_id: str) -> list[tuple[str, str, str]]:
    """(program sha, env key, seeds key) of every evaluation of the run, one per row."""
    keys = []
    for row in store.history(run_id):
        program = store.get_program(row.program_id)
        for evaluation in store.evaluations(program.id):
            keys.append((program.sha256, evaluation.env_key, evaluation.seeds_key))
    return keys


def test_loop_offline_run_records_everything(tmp_path: Path, bwrap_backend) -> None:
    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(store, _config(), MutationProposer(seed=1))
        run = store.get_run(outcome.run_id)
        assert outcome.reason == "iterations" and outcome.iterations == 4
        assert run.status == "finished"
        history = store.history(run.id)
        assert history[0].origin == "seed"
        assert all(row.origin == "mutation" for row in history[1:])
        assert all(row.parent_id is not None for row in history[1:])
        kinds = Counter(event.kind for event in store.events(run.id))
        assert kinds["iteration"] == 4 and kinds["run_started"] == 1
        assert kinds["run_finished"] == 1
        best = store.best_program(run.id)
        assert best is not None and best.program_id == outcome.best_program_id
        keys = _evaluation_keys(store, run.id)
        assert len(keys) == len(set(keys))  # nothing played twice


def test_loop_env_step_budget_stops_cleanly(tmp_path: Path, bwrap_backend) -> None:
    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(store, _config(iterations=50, max_env_steps=1), MutationProposer())
        assert outcome.reason.startswith("budget")
        assert outcome.iterations == 0  # the seed's evaluation already spent the budget
        kinds = [event.kind for event in store.events(outcome.run_id)]
        assert "budget_hit" in kinds and kinds[-1] == "run_stopped"
        assert store.get_run(outcome.run_id).status == "stopped"


def test_loop_stop_request_finishes_the_candidates_in_hand_and_records(
    tmp_path: Path, bwrap_backend
) -> None:
    stop = StopRequest()
    proposed: list[int] = []

    class StopAfterFirst(MutationProposer):
        def propose(self, context: ProposalContext) -> Proposal:
            proposed.append(context.iteration)
            if not stop:
                stop.request("received SIGTERM")  # one signal, during the first proposal
            return super().propose(context)

    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(store, _config(iterations=10), StopAfterFirst(), stop=stop)
        # Nothing new is proposed after the stop; what was in hand is finished and recorded.
        assert 1 <= len(proposed) < 10
        assert outcome.iterations == len(proposed)
        assert "SIGTERM" in outcome.reason
        events = store.events(outcome.run_id)
        assert sum(e.kind == "iteration" for e in events) == len(proposed)
        assert events[-1].kind == "run_stopped" and "SIGTERM" in events[-1].message


_RUNNER = textwrap.dedent(
    """
    import sys
    from engine.config import RunConfig
    from engine.loop import StopRequest, optimize
    from engine.proposers.mutate import MutationProposer
    from storage import Store

    db, iterations, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    config = RunConfig(game="Pong", iterations=iterations, episodes=2, max_steps=1200,
                       smoke_max_steps=150, sandbox="bwrap", concurrency=3, islands=2,
                       migrate_every=2, holdout_episodes=2)
    stop = StopRequest()
    stop.install_signal_handlers()
    with Store.open(db) as store:
        outcome = optimize(store, config, MutationProposer(seed=3),
                           run_id=None if resume == "-" else resume, stop=stop)
    print(outcome.run_id, outcome.reason, flush=True)
    """
)


def _start_runner(db: Path, iterations: int, resume: str = "-") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(db), str(iterations), resume],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _count_evaluations(db: Path) -> int:
    with Store.open(db) as store:
        return sum(
            len(store.evaluations(row.program_id))
            for run in store.runs()
            for row in store.history(run.run_id)
        )


def _decided(store: Store, run_id: str) -> list[int]:
    return [int((e.data or {})["iteration"]) for e in store.events(run_id) if e.kind == "iteration"]


@pytest.mark.slow
def test_loop_resume_after_kill_9_loses_nothing_and_computes_nothing_twice(
    tmp_path: Path, bwrap_backend
) -> None:
    """Three candidates in flight on two islands, killed -9 mid-run, resumed: every committed
    evaluation is still there and none is played again, each iteration is decided once."""
    iterations = 6
    killed_db = tmp_path / "killed.db"
    victim = _start_runner(killed_db, iterations)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and (
        not killed_db.exists() or _count_evaluations(killed_db) < 5
    ):
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with Store.open(killed_db) as store:
        (run,) = store.runs()
        assert run.status == "running"  # killed: nobody stopped it
        before = _evaluation_keys(store, run.run_id)
        decided = _decided(store, run.run_id)
    assert len(before) >= 5

    resumed = _start_runner(killed_db, iterations, resume=run.run_id[:8])
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read() if resumed.stderr else ""
    with Store.open(killed_db) as store:
        got = _evaluation_keys(store, run.run_id)
        numbers = _decided(store, run.run_id)
        kinds = [event.kind for event in store.events(run.run_id)]
        islands = {store.get_program(r.program_id).island for r in store.history(run.run_id)}
    assert set(before) <= set(got)  # nothing committed was lost
    assert len(got) == len(set(got))  # nothing was played twice
    assert numbers[: len(decided)] == decided and sorted(numbers) == list(range(iterations))
    assert islands >= {0, 1}
    assert "crash_recovery" in kinds and "run_resumed" in kinds and kinds[-1] == "run_finished"


def test_loop_sigterm_stops_a_running_process_cleanly(tmp_path: Path, bwrap_backend) -> None:
    db = tmp_path / "run.db"
    process = _start_runner(db, 50)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not db.exists() or _count_evaluations(db) < 2):
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "stopped: received SIGTERM" in out
    with Store.open(db) as store:
        (run,) = store.runs()
        assert run.status == "stopped"


BETTER = DEFAULT_PROGRAM
REJECTED = "import os\n\ndef act(obs):\n    return 0\n"
RAISES = "def act(obs):\n    raise RuntimeError('oops')\n"
LOOPS = "def act(obs):\n    while True:\n        pass\n"
PROSE = "I would move the paddle towards the ball, but I cannot write code today."


def test_loop_with_scripted_llm_survives_everything(
    tmp_path: Path, scripted_llm, bwrap_backend
) -> None:
    fence = "```python\n{}\n```"
    llm = scripted_llm(
        [
            Answer("Here is a fix:\n" + fence.format(RAISES)),
            Answer(fence.format(REJECTED)),
            Status(429, retry_after=0.01),
            Answer(fence.format(LOOPS)),
            Answer(PROSE),
            Status(500),
            Hang(3.0),
            Answer("Improved:\n" + fence.format(BETTER)),
        ],
        when_empty=Answer(fence.format(BETTER)),
    )
    delays: list[float] = []
    proposer = LlmProposer(
        "scripted-model",
        base_url=llm.base_url,
        api_key="test",
        timeout_seconds=1.0,
        sleep=delays.append,
        prices={"scripted-model": (1.0, 2.0)},
    )
    config = _config(
        iterations=6, proposer="llm", model="scripted-model", act_seconds=0.5, concurrency=1
    )
    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(store, config, proposer)
        run_id = outcome.run_id
        calls = store.llm_calls(run_id)
        history = store.history(run_id)
        statuses = [
            (event.data or {}).get("status")
            for event in store.events(run_id)
            if event.kind == "iteration"
        ]
        best = store.get_program(outcome.best_program_id or "")

    assert outcome.reason == "iterations"
    # error, rejected, timeout (after a 429), prose, (500, hang) -> better, better again (dedup)
    assert statuses[:5] == ["error", "rejected", "timeout", "no_program", "ok"]
    assert best.source.strip() == BETTER.strip()
    assert len(calls) == len(llm.requests)  # every HTTP request is stored, failures included
    assert sum(call.error is not None for call in calls) == 3  # 429, 500, the hang
    assert all(call.tokens_in for call in calls if call.error is None)
    assert all(call.cost is not None for call in calls if call.error is None)
    assert len(delays) == 3  # backoff after each retried failure
    produced = {call.produced_program_id for call in calls if call.produced_program_id}
    assert best.id in produced
    assert sum(row.origin == "llm" for row in history) == 4  # identical sources stored once
    # The prompt after the rejected program carried the checker's diagnostic.
    third_prompt = str(llm.requests[2]["messages"])
    assert "import-not-allowed" in third_prompt or "not allowed" in third_prompt
