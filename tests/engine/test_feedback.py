"""compose_feedback on real evaluations (played in-process with backend "none") and on
hand-made traces where the exact numbers matter."""

from __future__ import annotations

import re

import pytest

from engine.feedback import MAX_FEEDBACK_CHARS, compose_feedback
from sandbox.checker import check_source
from sandbox.evaluate import evaluate
from sandbox.games import get_game
from sandbox.results import (
    EpisodeResult,
    EvaluationResult,
    Snapshot,
    Status,
    Trace,
    worst,
)
from sandbox.settings import EnvSettings, Limits
from tests.conftest import program

PONG = get_game("Pong")
BREAKOUT = get_game("Breakout")

KEY_ERROR = """\
def act(obs):
    ball = obs["Ball"]
    return 2 if ball["y"] < obs["Player"]["y"] else 3
"""

INVALID_LATER = """\
steps = 0


def act(obs):
    global steps
    steps += 1
    return 7 if steps > 20 else 0
"""

SPINS = """\
steps = 0


def act(obs):
    global steps
    steps += 1
    while steps > 5:
        pass
    return 0
"""

RANDOM_BREAKOUT = """\
import random


def act(obs):
    return random.choice([0, 1, 2, 3])
"""


def play(source: str, game: str, seeds: list[int], steps: int, **limits) -> EvaluationResult:
    return evaluate(
        source,
        game,
        seeds=seeds,
        env=EnvSettings.deterministic(max_steps=steps),
        limits=Limits(**limits),
        backend="none",
    )


@pytest.fixture(scope="module")
def pong_tracker() -> EvaluationResult:
    return play(program("pong_tracker.py"), "Pong", [0], 400)


@pytest.fixture(scope="module")
def pong_key_error() -> EvaluationResult:
    return play(KEY_ERROR, "Pong", [0, 1], 50)


def combined(*episodes: EpisodeResult, env: EnvSettings | None = None) -> EvaluationResult:
    return EvaluationResult(
        game="Pong",
        env=env or EnvSettings.deterministic(max_steps=400),
        limits=Limits(),
        backend="none",
        checked=True,
        status=worst([e.status for e in episodes]),
        episodes=list(episodes),
    )


def test_compose_feedback_pong_shows_steps_before_each_lost_point(pong_tracker):
    episode = pong_tracker.episodes[0]
    losses = [step for step, reward in episode.trace.rewards if reward < 0]
    assert episode.status == Status.OK and losses, "the tracker should lose a point in 400 steps"
    text = compose_feedback(pong_tracker, PONG)

    assert len(text) <= MAX_FEEDBACK_CHARS
    assert text.startswith("Evaluation on Pong")
    assert "seed 0: ok (stopped at the step cap), return" in text
    assert f"-1 x{len(losses)} at step" in text and str(losses[0]) in text
    assert f"Before the reward -1 at step {losses[0]}:" in text
    event_line = next(line for line in text.splitlines() if line.strip().startswith(str(losses[0])))
    assert "reward -1" in event_line and "Player x=140" in event_line and "Ball x=" in event_line
    assert re.search(
        r"when the Ball reached the Player's x \(step \d+\) it was \d+ px (above|below)", text
    )
    assert re.search(r"Actions over 400 steps: (NOOP|RIGHT|LEFT) \d+%", text)
    assert "never used: FIRE, RIGHTFIRE, LEFTFIRE" in text
    assert re.search(r"Did nothing \(NOOP\) on \d+% of steps", text)
    assert "Object sizes: Player w=4" in text


def test_compose_feedback_is_a_small_fraction_of_the_step_by_step_dump(pong_tracker):
    text = compose_feedback(pong_tracker, PONG)
    # ~230 characters per step for the full dump of 400 Pong steps
    assert len(text) < 0.1 * 400 * 230


def test_compose_feedback_error_shows_traceback_failing_obs_and_hint(pong_key_error):
    text = compose_feedback(pong_key_error, PONG)
    assert "status error" in text
    assert "seed 0: error at step 0" in text
    assert 'File "<policy>", line 2, in act' in text and "KeyError: 'Ball'" in text
    assert "obs given to act(): Player x=140" in text and "(absent: Ball, Enemy)" in text
    assert "use obs.get('Ball')" in text
    assert "Seed 1 ended with the same error as seed 0." in text
    assert "Actions: none" in text


def test_compose_feedback_invalid_action_names_step_and_value():
    result = play(INVALID_LATER, "Pong", [0], 100)
    text = compose_feedback(result, PONG)
    assert "seed 0: invalid_action at step 20" in text
    assert "act() returned 7 at step 20" in text
    assert "Last steps before the invalid_action:" in text
    assert "   20 obs given to act():" in text


def test_compose_feedback_timeout_names_the_step():
    result = play(SPINS, "Pong", [0], 100, act_seconds=0.3)
    text = compose_feedback(result, PONG)
    assert "seed 0: timeout at step 5" in text
    assert "did not return within 0.3 s at step 5" in text
    assert "act() must return quickly" in text


def test_compose_feedback_breakout_lives_lost():
    result = play(RANDOM_BREAKOUT, "Breakout", [0], 300)
    trace = result.episodes[0].trace
    assert trace is not None
    assert trace.life_losses, "a random Breakout policy should lose a life in 300 steps"
    text = compose_feedback(result, BREAKOUT)
    assert len(text) <= MAX_FEEDBACK_CHARS
    assert f"Lives lost: {len(trace.life_losses)}, at step" in text
    assert f"Before a life lost at step {trace.life_losses[0]}:" in text
    assert "<- life lost" in text
    assert "unchanged: Block[" in text  # the block rows are said once, not on every line
    assert "FIRE" in text


def test_compose_feedback_rejected_lists_diagnostics_and_says_nothing_ran():
    report = check_source("import os\n\n\ndef act(obs):\n    return eval('1')\n")
    assert not report.ok
    result = EvaluationResult(
        game="Pong",
        env=EnvSettings(),
        limits=Limits(),
        backend="none",
        checked=True,
        status=Status.REJECTED,
        check=report,
    )
    text = compose_feedback(result, PONG)
    assert "nothing ran" in text
    for diagnostic in report.diagnostics:
        assert diagnostic.render() in text


def test_compose_feedback_rejected_caps_many_diagnostics():
    source = "def act(obs):\n" + "".join(f"    x{i} = eval('1')\n" for i in range(60))
    report = check_source(source + "    return 0\n")
    result = EvaluationResult(
        game="Pong",
        env=EnvSettings(),
        limits=Limits(),
        backend="none",
        checked=True,
        status=Status.REJECTED,
        check=report,
    )
    text = compose_feedback(result, PONG)
    assert len(text) <= MAX_FEEDBACK_CHARS
    assert re.search(r"\.\.\. and \d+ more problems", text)


def test_compose_feedback_worst_episode_first(pong_tracker, pong_key_error):
    ok, failed = pong_tracker.episodes[0], pong_key_error.episodes[1]
    text = compose_feedback(combined(ok, failed), PONG)
    assert text.index("Worst episode, seed 1: error") < text.index("Episode, seed 0: ok")


def test_compose_feedback_respects_the_size_cap(pong_tracker, pong_key_error):
    ok, failed = pong_tracker.episodes[0], pong_key_error.episodes[0]
    long_error = failed.model_copy(
        update={"error": "\n".join(f"  frame {i}: " + "x" * 150 for i in range(60))}
    )
    many = [ok.model_copy(update={"seed": seed}) for seed in range(40)]
    result = combined(long_error.model_copy(update={"seed": 99}), *many)
    text = compose_feedback(result, PONG)
    assert len(text) <= MAX_FEEDBACK_CHARS
    assert "- 29 more: returns" in text  # 41 episodes, 12 listed one per line
    small = compose_feedback(result, PONG, max_chars=900)
    assert len(small) <= 900 and small.startswith("Evaluation on Pong")


# -- hand-made traces: the hints' numbers ---------------------------------------------------------


def box(x: int, y: int, w: int, h: int, dx: int = 0, dy: int = 0) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h, "dx": dx, "dy": dy}


def episode_with(snapshots: list[Snapshot], rewards, life_losses=(), actions="") -> EpisodeResult:
    length = max(s.step for s in snapshots) + 1
    return EpisodeResult(
        seed=0,
        status=Status.OK,
        episode_return=sum(r for _, r in rewards),
        length=length,
        wall_seconds=0.1,
        trace=Trace(
            actions=actions or "3" * length,
            rewards=list(rewards),
            life_losses=list(life_losses),
            snapshots=snapshots,
        ),
    )


def test_miss_hint_ball_passes_above_a_paddle_moving_away():
    # Player fixed at x=140 (a paddle), moving down; the ball comes from the left, 30 px above.
    snapshots = [
        Snapshot(
            step=step,
            obs={
                "Player": box(140, 100 + 5 * (step - 10), 4, 15, dy=5),
                "Ball": box(124 + 4 * (step - 10), 60, 2, 4, dx=4),
                "Enemy": box(16, 60, 4, 15),
            },
            action=3,
            reward=-1.0 if step == 17 else 0.0,
        )
        for step in range(10, 18)
    ]
    text = compose_feedback(combined(episode_with(snapshots, [(17, -1.0)])), PONG)
    # step 14: ball x 140..142 overlaps the paddle's x 140..144; ball y 60..64, paddle 120..135
    assert (
        "when the Ball reached the Player's x (step 14) it was 56 px above the Player "
        "(Ball y 60..64, Player y 120..135); the Player was moving away (dy=+5)"
    ) in text
    assert "unchanged: Enemy x=16 y=60" in text


def test_miss_hint_ball_falls_beside_a_bottom_paddle():
    snapshots = [
        Snapshot(
            step=step,
            obs={
                "Player": box(40, 189, 16, 4),
                "Ball": box(100, 165 + 6 * (step - 20), 2, 4, dy=6),
                "lives": 5,
            },
            action=0,
            reward=0.0,
        )
        for step in range(20, 28)
    ]
    episode = episode_with(snapshots, [], life_losses=[27], actions="0" * 28)
    text = compose_feedback(combined(episode), BREAKOUT)
    # step 24: ball y 189..193 overlaps the paddle's y; ball x 100..102, paddle x 40..56
    assert "when the Ball reached the Player's y (step 24) it was 44 px right of the Player" in text
    assert "<- life lost" in text
    assert "did nothing on 100% of steps" in text
    assert "No reward at all in 28 steps" not in text  # too short to say so


def test_miss_hint_summarises_several_losses():
    snapshots, rewards = [], []
    for start, ball_y in ((10, 60), (30, 180), (50, 50)):
        end = start + 7
        rewards.append((end, -1.0))
        snapshots += [
            Snapshot(
                step=step,
                obs={
                    "Player": box(140, 100, 4, 15),
                    "Ball": box(124 + 4 * (step - start), ball_y, 2, 4, dx=4),
                },
                action=0,
                reward=-1.0 if step == end else 0.0,
            )
            for step in range(start, end + 1)
        ]
    text = compose_feedback(combined(episode_with(snapshots, rewards)), PONG)
    assert "In 3 losses, what got past the Player was the Ball x3" in text
    assert "above it x2, below it x1" in text


def test_miss_hint_closest_approach_when_the_player_moves_freely():
    # Asterix-like: the Player moves in x and y, so there is no line to cross.
    snapshots = [
        Snapshot(
            step=step,
            obs={
                "Player": box(50 + step, 100 + step, 8, 11, dx=1, dy=1),
                "Enemy": [box(120 - 5 * step, 120, 8, 8, dx=-5)],
                "lives": 3,
            },
            action=2,
            reward=0.0,
        )
        for step in range(0, 8)
    ]
    episode = episode_with(snapshots, [], life_losses=[7], actions="2" * 8)
    text = compose_feedback(combined(episode), get_game("Asterix"))
    # step 7: Player x 57..65 y 107..118, Enemy x 85..93 y 120..128: 20 px right, 2 px below
    assert "the Enemy came closest at step 7: 20 px right of the Player" in text
    assert "the Player was moving away (dx=+1)" not in text
