"""Re-simulate a stored episode from its action log: rewards, length and (optionally) frames.

ALE is deterministic given the reset seed, the env setting and the action sequence, sticky
actions included, so the stored actions of an episode replay to exactly the episode the harness
played, on any machine. Actions are data: no policy code runs here, so no sandbox is needed.
This is what lets anyone recompute every stored score without trusting the sandbox that
produced it (`evocade verify`), and watch an episode (`evocade replay`).

    episode = EpisodeLog("Pong", seed=0, frameskip=4, repeat_action_probability=0.25,
                         actions="2233...")
    outcome = replay(episode)                      # ReplayOutcome(episode_return, length, ...)
    for frame in replay_frames(episode): ...        # RGB frames, one per step

Imports nothing but the emulator stack (it lives in `sandbox/`, which owns the emulator).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sandbox.games import ACTION_ALPHABET, get_game
from sandbox.runtime.emulator import make_env


class ReplayError(ValueError):
    """An action log that cannot be replayed (a character that is no action of the game)."""


@dataclass(frozen=True)
class EpisodeLog:
    """What replaying one episode needs: the game, its env setting, its seed and its actions.

    `actions` holds one character per step, `sandbox.games.ACTION_ALPHABET[index]`, as the
    harness's trace stores them.
    """

    game: str
    seed: int
    frameskip: int
    repeat_action_probability: float
    actions: str

    def action_indices(self) -> list[int]:
        """The actions as indices; ReplayError names the first step whose character is bad."""
        n_actions = len(get_game(self.game).actions)
        indices: list[int] = []
        for step, char in enumerate(self.actions):
            index = ACTION_ALPHABET.find(char)
            if not 0 <= index < n_actions:
                raise ReplayError(
                    f"action log has {char!r} at step {step}, which is no action of "
                    f"{self.game} (0..{n_actions - 1})"
                )
            indices.append(index)
        return indices


@dataclass(frozen=True)
class ReplayOutcome:
    """What the emulator did with the action log.

    `length` counts the steps played: all of the log, unless the game ended first
    (`ended_early`: the log goes on after the emulator said the episode was over, which the
    harness never records). `rewards` are the (step, reward) pairs of nonzero rewards, as the
    trace stores them. `terminated`: the emulator ended the episode at the last step played
    (game over, or ALE's own frame cap).
    """

    episode_return: float
    length: int
    logged_steps: int
    rewards: list[tuple[int, float]] = field(default_factory=list)
    ended_early: bool = False
    terminated: bool = False  # the emulator ended the episode at its last step played


@dataclass(frozen=True)
class ReplayStep:
    """One step of a replay: the action taken, its reward, the score after it, the screen."""

    step: int
    action: int
    reward: float
    score: float
    frame: np.ndarray | None  # (210, 160, 3) uint8 after the action; None unless rendering
    ended: bool = False  # the emulator ended the episode with this step


def _quiet_emulator() -> None:
    """No ALE banner on the user's terminal for each replay (errors are still reported)."""
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)


class Replayer:
    """Replays episodes one after another, building each game's emulator once.

    Resetting with an episode's seed restarts the emulator exactly (the harness, too, plays
    all the seeds of a worker on one emulator), so verification of many episodes pays the
    construction once per (game, env setting). Not thread-safe: one per thread.
    """

    def __init__(self) -> None:
        self._envs: dict[tuple[str, int, float, bool], Any] = {}

    def _env(self, episode: EpisodeLog, render: bool) -> Any:
        key = (episode.game, episode.frameskip, episode.repeat_action_probability, render)
        if key not in self._envs:
            _quiet_emulator()
            self._envs[key] = make_env(
                episode.game, episode.frameskip, episode.repeat_action_probability, render=render
            )
        return self._envs[key]

    def steps(self, episode: EpisodeLog, *, frames: range | None = None) -> Iterator[ReplayStep]:
        """Play the action log step by step, stopping where the emulator ends the episode.

        Steps in `frames` carry the screen after their action; the replay stops after the
        last of them. The emulator is `sandbox.runtime.emulator.make_env`, the harness's own
        construction, so the replay is the same episode.
        """
        actions = episode.action_indices()
        if frames is not None:
            actions = actions[: frames.stop]
        env = self._env(episode, render=frames is not None)
        env.reset(seed=int(episode.seed))
        score = 0.0
        for step, action in enumerate(actions):
            _, reward, terminated, truncated, _info = env.step(action)
            score += float(reward)
            drawn = frames is not None and step in frames
            frame = np.asarray(env.render(), dtype=np.uint8) if drawn else None
            ended = bool(terminated or truncated)
            yield ReplayStep(step, action, float(reward), score, frame, ended)
            if ended:
                return

    def replay(self, episode: EpisodeLog) -> ReplayOutcome:
        """Replay without rendering: the recomputed return and length of the episode."""
        rewards: list[tuple[int, float]] = []
        score, length, ended = 0.0, 0, False
        for played in self.steps(episode):
            length, score, ended = played.step + 1, played.score, played.ended
            if played.reward:
                rewards.append((played.step, played.reward))
        logged = len(episode.actions)
        return ReplayOutcome(
            score, length, logged, rewards, ended_early=length < logged, terminated=ended
        )

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def replay_steps(episode: EpisodeLog, *, frames: range | None = None) -> Iterator[ReplayStep]:
    """`Replayer.steps` on an emulator of its own, closed when the replay ends."""
    with Replayer() as replayer:
        yield from replayer.steps(episode, frames=frames)


def replay(episode: EpisodeLog) -> ReplayOutcome:
    """`Replayer.replay` on an emulator of its own."""
    with Replayer() as replayer:
        return replayer.replay(episode)


@dataclass(frozen=True)
class FrameWindow:
    """Which steps become frames: `first` up to (not including) `stop`, every `stride`-th."""

    first: int = 0
    stop: int | None = None  # None: the end of the episode
    stride: int = 1

    def __post_init__(self) -> None:
        if self.first < 0:
            raise ReplayError(f"the first step must be 0 or more (got {self.first})")
        if self.stop is not None and self.stop <= self.first:
            raise ReplayError(f"the range {self.first}..{self.stop} holds no step")
        if self.stride < 1:
            raise ReplayError(f"the stride must be at least 1 (got {self.stride})")

    def steps(self, length: int) -> range:
        """The steps shown of an episode of `length` steps."""
        stop = length if self.stop is None else min(self.stop, length)
        return range(self.first, stop, self.stride)


def stride_for(frames: int, max_frames: int) -> int:
    """The smallest stride that shows `frames` steps in at most `max_frames` frames."""
    if max_frames < 1:
        raise ReplayError("max_frames must be at least 1")
    return max(1, -(-frames // max_frames))


def replay_frames(episode: EpisodeLog, window: FrameWindow | None = None) -> Iterator[ReplayStep]:
    """The steps in `window` with their frames (the steps before it are played, not drawn)."""
    shown = (window or FrameWindow()).steps(len(episode.actions))
    for played in replay_steps(episode, frames=shown):
        if played.frame is not None:
            yield played
