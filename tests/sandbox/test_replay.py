"""sandbox.replay: a stored action log re-simulates to exactly the episode the harness played."""

from __future__ import annotations

import numpy as np
import pytest

from engine.seeds import seed_source
from sandbox.evaluate import evaluate
from sandbox.replay import (
    EpisodeLog,
    FrameWindow,
    Replayer,
    ReplayError,
    replay,
    replay_frames,
    stride_for,
)
from sandbox.results import EpisodeResult, Status
from sandbox.settings import EnvSettings

STICKY = EnvSettings(repeat_action_probability=0.25, max_steps=700)


def _log(game: str, episode: EpisodeResult, env: EnvSettings) -> EpisodeLog:
    assert episode.trace is not None
    return EpisodeLog(
        game, episode.seed, env.frameskip, env.repeat_action_probability, episode.trace.actions
    )


@pytest.mark.bwrap
@pytest.mark.parametrize("game", ["Pong", "Breakout"])
def test_replay_equals_the_harness_episode_under_sticky_actions(game: str, bwrap_backend) -> None:
    result = evaluate(seed_source(game), game, seeds=[0, 1], env=STICKY, backend=bwrap_backend)
    assert result.status == Status.OK
    rewarded = 0
    with Replayer() as replayer:  # one emulator for both seeds, as the harness does
        for episode in result.episodes:
            assert episode.trace is not None
            outcome = replayer.replay(_log(game, episode, STICKY))
            assert outcome.episode_return == episode.episode_return
            assert outcome.length == episode.length == len(episode.trace.actions)
            assert outcome.rewards == [(step, reward) for step, reward in episode.trace.rewards]
            assert not outcome.ended_early
            rewarded += len(outcome.rewards)
    assert rewarded > 0, "no reward in either episode: the comparison would prove little"

    # The env setting is part of the episode: without sticky actions the same log replays to
    # a different game, so a replay that ignored the setting could not pass the test above.
    first = result.episodes[0]
    assert first.trace is not None
    plain = replay(EpisodeLog(game, first.seed, 4, 0.0, first.trace.actions))
    other_seed = replay(EpisodeLog(game, first.seed + 100, 4, 0.25, first.trace.actions))
    stored = [(step, reward) for step, reward in first.trace.rewards]
    assert plain.rewards != stored or other_seed.rewards != stored


@pytest.mark.bwrap
def test_replay_reproduces_the_partial_episode_of_a_failing_policy(bwrap_backend) -> None:
    source = (
        "steps = [0]\n"
        "def act(obs):\n"
        "    steps[0] += 1\n"
        "    if steps[0] > 250:\n"
        "        raise ValueError('gave up')\n"
        "    return steps[0] % 4\n"
    )
    result = evaluate(source, "Pong", seeds=[3], env=STICKY, backend=bwrap_backend)
    (episode,) = result.episodes
    assert episode.status == Status.ERROR and episode.length == 250
    outcome = replay(_log("Pong", episode, STICKY))
    assert (outcome.episode_return, outcome.length) == (episode.episode_return, 250)
    assert not outcome.terminated  # the harness stopped it, not the game


def test_replay_refuses_a_character_that_is_no_action_of_the_game() -> None:
    with pytest.raises(ReplayError, match="step 2"):
        EpisodeLog("Breakout", 0, 4, 0.25, "01z3").action_indices()
    with pytest.raises(ReplayError, match="step 1"):
        EpisodeLog("Breakout", 0, 4, 0.25, "04").action_indices()  # Breakout has 4 actions


def test_replay_frames_come_from_the_window_only() -> None:
    log = EpisodeLog("Pong", 0, 4, 0.25, "2" * 60 + "3" * 60)
    shown = list(replay_frames(log, FrameWindow(10, 50, 7)))
    assert [step.step for step in shown] == list(range(10, 50, 7))
    assert all(step.frame is not None and step.frame.shape == (210, 160, 3) for step in shown)
    assert shown[0].frame is not None and shown[0].frame.dtype == np.uint8
    # the paddle moves: frames differ
    assert shown[-1].frame is not None
    assert not np.array_equal(shown[0].frame, shown[-1].frame)


def test_replay_frame_window_and_stride_rules() -> None:
    assert list(FrameWindow(0, None, 3).steps(10)) == [0, 3, 6, 9]
    assert list(FrameWindow(5, 100, 1).steps(8)) == [5, 6, 7]
    assert stride_for(27_000, 1500) == 18 and stride_for(100, 1500) == 1
    for bad in ({"first": -1}, {"first": 5, "stop": 5}, {"stride": 0}):
        with pytest.raises(ReplayError):
            FrameWindow(**bad)
