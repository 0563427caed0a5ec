"""evaluate(): real emulator, real sandbox, the policy contract end to end."""

from __future__ import annotations

import pytest

from sandbox.evaluate import evaluate
from sandbox.games import ACTION_ALPHABET
from sandbox.results import Status
from sandbox.settings import EnvSettings, Limits
from tests.conftest import program, trace_of

STICKY = EnvSettings(max_steps=8000)


@pytest.mark.bwrap
@pytest.mark.slow
def test_evaluate_ball_tracker_beats_random_by_a_wide_margin(bwrap_backend) -> None:
    seeds = [0, 1]
    tracker = evaluate(
        program("pong_tracker.py"), "Pong", seeds=seeds, env=STICKY, backend=bwrap_backend
    )
    random = evaluate(
        program("pong_random.py"), "Pong", seeds=seeds, env=STICKY, backend=bwrap_backend
    )
    assert tracker.status == random.status == Status.OK
    assert tracker.mean_return is not None and random.mean_return is not None
    assert random.mean_return <= -19  # a random paddle almost never returns the ball
    assert tracker.mean_return >= random.mean_return + 5
    assert tracker.backend == "bwrap"


@pytest.mark.bwrap
def test_evaluate_records_a_compact_trace(bwrap_backend) -> None:
    env = EnvSettings(max_steps=400)
    result = evaluate(
        program("pong_tracker.py"),
        "Pong",
        seeds=[3],
        env=env,
        backend=bwrap_backend,
        limits=Limits(trace_snapshots=30),
    )
    episode = result.episodes[0]
    trace = episode.trace
    assert trace is not None
    assert len(trace.actions) == episode.length
    assert set(trace.actions) <= set(ACTION_ALPHABET[:6])
    assert sum(reward for _, reward in trace.rewards) == episode.episode_return
    assert all(reward != 0 for _, reward in trace.rewards)
    assert 0 < len(trace.snapshots) <= 30
    steps = [snapshot.step for snapshot in trace.snapshots]
    assert steps == sorted(set(steps))
    # The steps right before each point are kept in full.
    for step, _ in trace.rewards:
        if len(trace.snapshots) < 30:
            assert step in steps
    assert trace.snapshots[-1].step == episode.length  # the final observation
    assert "Player" in trace.snapshots[0].obs


@pytest.mark.bwrap
def test_evaluate_is_deterministic_for_same_seeds_and_fresh_per_episode(bwrap_backend) -> None:
    env = EnvSettings(max_steps=300)
    first = evaluate(program("chatty.py"), "Pong", seeds=[5, 6], env=env, backend=bwrap_backend)
    second = evaluate(program("chatty.py"), "Pong", seeds=[5, 6], env=env, backend=bwrap_backend)
    assert first.returns == second.returns
    assert first.lengths == second.lengths
    for episode in first.episodes:
        # Module state starts afresh in every episode: each one counts from 1.
        assert episode.output.startswith("step 1\nstep 2\n")
        assert f"step {episode.length}\n" in episode.output


@pytest.mark.bwrap
def test_evaluate_same_result_in_bwrap_and_without_sandbox(bwrap_backend) -> None:
    env = EnvSettings.deterministic(max_steps=600)
    sandboxed = evaluate(
        program("pong_tracker.py"), "Pong", seeds=[0, 1], env=env, backend=bwrap_backend
    )
    local = evaluate(program("pong_tracker.py"), "Pong", seeds=[0, 1], env=env, backend="none")
    assert sandboxed.returns == local.returns
    assert sandboxed.lengths == local.lengths
    assert [trace_of(e).actions for e in sandboxed.episodes] == [
        trace_of(e).actions for e in local.episodes
    ]


@pytest.mark.bwrap
def test_evaluate_caps_policy_output(bwrap_backend) -> None:
    source = "def act(obs):\n    print('x' * 1000)\n    return 0\n"
    result = evaluate(
        source,
        "Pong",
        seeds=[0],
        env=EnvSettings(max_steps=100),
        limits=Limits(output_bytes=5000),
        backend=bwrap_backend,
    )
    output = result.episodes[0].output
    assert result.status == Status.OK
    assert len(output) < 5200
    assert "more characters of output dropped" in output


def test_evaluate_rejects_without_running(tmp_path) -> None:
    result = evaluate(
        "import os\ndef act(obs):\n    return 0\n", "Pong", seeds=[0, 1], backend="none"
    )
    assert result.status == Status.REJECTED
    assert result.episodes == []
    assert result.check is not None and not result.check.ok
    assert any(d.rule == "import-not-allowed" for d in result.check.diagnostics)


@pytest.mark.bwrap
@pytest.mark.parametrize(
    "game", ["Breakout", "SpaceInvaders", "Freeway", "Asterix", "Enduro", "Qbert", "Seaquest"]
)
def test_evaluate_plays_every_game(game: str, bwrap_backend) -> None:
    from sandbox.games import get_game

    info = get_game(game)
    source = (
        "def act(obs):\n"
        "    assert isinstance(obs, dict)\n"
        f"    for name in {list(info.list_categories)!r}:\n"
        "        assert isinstance(obs[name], list)\n"
        "    return 1\n"
    )
    result = evaluate(
        source, game, seeds=[0], env=EnvSettings(max_steps=200), backend=bwrap_backend
    )
    assert result.status == Status.OK, result.episodes[0].error
    assert 0 < result.episodes[0].length <= 200
    categories = set(info.categories) | {"lives"}
    seen = {key for snapshot in trace_of(result.episodes[0]).snapshots for key in snapshot.obs}
    assert seen <= categories
    assert seen & set(info.categories)
