"""The pure decisions behind verify, replay and plot: no emulator, no sandbox.

`judge` says whether a replay agrees with what was stored; `episode_log` what an episode
needs to be replayed; `run_series` which evaluation is training, held-out or neither.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.audit import Unreplayable, episode_log, judge
from engine.series import run_series
from sandbox.replay import ReplayOutcome
from storage.encode import env_key, holdout_env_key, seeds_key
from storage.models import Evaluation
from storage.queries import HistoryRow

ENV = {"frameskip": 4, "repeat_action_probability": 0.25, "max_steps": 1000}
SMOKE = {**ENV, "max_steps": 300}


def _outcome(total: float, length: int, *, logged: int | None = None, ended: bool = False):
    logged = length if logged is None else logged
    return ReplayOutcome(total, length, logged, [], ended_early=length < logged, terminated=ended)


def test_judge_accepts_an_exact_replay() -> None:
    assert judge(-3.0, 1000, "ok", 1000, _outcome(-3.0, 1000)) == ""
    assert judge(-3.0, 640, "ok", 1000, _outcome(-3.0, 640, ended=True)) == ""


def test_judge_names_a_different_return_and_where_rewards_diverge() -> None:
    outcome = ReplayOutcome(-2.0, 500, 500, [(10, -1.0), (40, -1.0)], terminated=False)
    reason = judge(5.0, 500, "timeout", 1000, outcome, [[10, -1.0], [30, 1.0]])
    assert "return stored 5, replayed -2" in reason and "first differ at step 30" in reason


def test_judge_catches_a_log_that_does_not_fit_the_stored_episode() -> None:
    assert "action log has 400 steps" in judge(0.0, 500, "ok", 1000, _outcome(0.0, 400))
    early = _outcome(0.0, 300, logged=500, ended=True)
    assert "ended the episode at step 300" in judge(0.0, 500, "ok", 1000, early)
    # a clean episode under the cap must be one the game ended
    assert "had not ended it" in judge(0.0, 500, "ok", 1000, _outcome(0.0, 500))
    # a failed one is partial by nature
    assert judge(0.0, 500, "error", 1000, _outcome(0.0, 500)) == ""


_clock = iter(range(1, 10_000))


def _evaluation(program: str, env: dict, seeds: list[int], mean: float | None, **kw) -> Evaluation:
    steps = kw.pop("steps", 100)
    return Evaluation(
        id=f"{program}-{next(_clock):04d}",
        program_id=program,
        run_id="r" * 32,
        game="Pong",
        env=env,
        env_key=env_key("Pong", env),
        seeds=seeds,
        seeds_key=seeds_key(seeds),
        episodes=kw.pop("episodes", []),
        mean_return=mean,
        total_steps=steps,
        status=kw.pop("status", "ok"),
        backend="bwrap",
        created_at=datetime.now(UTC),
    )


def _row(program: str) -> HistoryRow:
    return HistoryRow(
        program, "r" * 32, None, 0, "seed", datetime.now(UTC), None, None, None, None, None
    )


def test_series_separates_training_heldout_and_smoke_and_counts_every_step() -> None:
    evaluations = [
        _evaluation("a", SMOKE, [0], 9.0, steps=300),  # smoke: scores nothing
        _evaluation("a", ENV, [0, 1], -5.0, steps=2000),
        _evaluation("b", SMOKE, [0], 1.0, steps=300),
        _evaluation("b", ENV, [0, 1], -1.0, steps=2000),
        _evaluation("b", ENV, [100, 101], -2.0, steps=2000),  # held-out
        _evaluation("c", SMOKE, [0], 0.0, steps=120, status="error"),
    ]
    series = run_series(
        "r" * 32,
        "Pong",
        ENV,
        {"episodes": 2, "first_seed": 0},
        [_row("a"), _row("b"), _row("c")],
        evaluations,
    )
    a, b, c = series.points
    assert (a.score, a.best_so_far, a.env_steps) == (-5.0, -5.0, 2300)
    assert (b.score, b.best_so_far, b.heldout, b.env_steps) == (-1.0, -1.0, -2.0, 6600)
    assert (c.score, c.best_so_far, c.status, c.env_steps) == (None, -1.0, None, 6600)
    assert series.has_heldout and series.best == -1.0


def test_series_reads_held_out_scores_stored_under_the_held_out_key() -> None:
    """The population engine keeps held-out evaluations under `holdout_env_key`, on seeds
    1000+, so that they never compete with training scores; the series must still find them."""
    held = _evaluation("b", ENV, [1000, 1001, 1002], 4.0, steps=3000)
    held.env_key = holdout_env_key("Pong", ENV)
    evaluations = [
        _evaluation("a", ENV, [0, 1], -5.0, steps=2000),
        _evaluation("b", ENV, [0, 1], 6.0, steps=2000),
        held,
        _evaluation("c", ENV, [0, 1], 7.0, steps=2000),  # not confirmed (yet)
    ]
    config = {"episodes": 2, "first_seed": 0}
    history = [_row("a"), _row("b"), _row("c")]
    a, b, c = run_series("r" * 32, "Pong", ENV, config, history, evaluations).points
    assert (a.heldout, b.heldout, c.heldout) == (None, 4.0, None)
    assert (b.heldout_best_so_far, c.heldout_best_so_far, c.best_so_far) == (4.0, 4.0, 7.0)
    assert b.env_steps == 7000


def test_series_ignores_failed_scores_for_best_so_far() -> None:
    evaluations = [
        _evaluation("a", ENV, [0], 3.0),
        _evaluation("b", ENV, [0], 7.0, status="timeout"),
    ]
    series = run_series("r" * 32, "Pong", ENV, {}, [_row("a"), _row("b")], evaluations)
    assert [p.best_so_far for p in series.points] == [3.0, 3.0]
    assert series.points[1].status == "timeout" and series.points[1].score is None


def test_episode_log_says_why_an_episode_cannot_be_replayed() -> None:
    evaluation = _evaluation("a", ENV, [7], 1.0, episodes=[{"seed": 7, "return": 1.0}])
    assert episode_log(evaluation, 0, {"actions": "0123"}).seed == 7
    with pytest.raises(Unreplayable, match="no trace"):
        episode_log(evaluation, 0, None)
    with pytest.raises(Unreplayable, match="size cap"):
        episode_log(evaluation, 0, {"storage_truncated": True})
    with pytest.raises(Unreplayable, match="no episode 3"):
        episode_log(evaluation, 3, {"actions": ""})
    no_env = _evaluation("a", {"max_steps": 5}, [7], 1.0, episodes=[{"seed": 7}])
    with pytest.raises(Unreplayable, match="env setting"):
        episode_log(no_env, 0, {"actions": "0"})
