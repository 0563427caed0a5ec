"""The emulator as every part of evocade builds it: the harness in the sandbox, replays and
verification on the host, and the benchmarks. One construction, so that a stored action log
replays to exactly the episode the harness played (ALE is deterministic given the reset seed,
the env setting and the actions, sticky actions included).

Runs inside the sandbox image too, so it imports nothing but the emulator stack.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.games import get_game


def make_env(
    game_name: str, frameskip: int, repeat_action_probability: float, *, render: bool = False
) -> Any:
    """An OCAtari env in RAM mode; `render=True` adds RGB frames (`env.render()`) for replays."""
    from sandbox.runtime.lean_imports import import_ocatari

    OCAtari = import_ocatari()
    game = get_game(game_name)
    # obs_mode="ori" with no buffer stacks: OCAtari then does no per-step image work at all;
    # the objects are read from RAM and turned into dicts by build_observation.
    return OCAtari(
        game.ale_id,
        mode="ram",
        hud=False,
        obs_mode="ori",
        create_buffer_stacks=[],
        render_mode="rgb_array" if render else None,
        frameskip=int(frameskip),
        repeat_action_probability=float(repeat_action_probability),
    )


def ale_of(env: Any) -> Any:
    """The ALE interface under OCAtari's wrapper (lives, RAM)."""
    return env._env.unwrapped.ale


@dataclass(frozen=True)
class ResetSnapshot:
    """The emulator exactly as `env.reset(seed=s)` leaves it: machine state, ALE's RNG (sticky
    actions), and the env's own generator."""

    ale_state: Any
    np_random: Any


def take_snapshot(env: Any, seed: int) -> ResetSnapshot:
    env.reset(seed=seed)
    return ResetSnapshot(ale_of(env).cloneState(include_rng=True), copy.deepcopy(_np_random(env)))


def reset(env: Any, seed: int, snapshots: Mapping[int, ResetSnapshot] | None = None) -> None:
    """`env.reset(seed=seed)`, in ~10 ms instead of ~250 when a snapshot of that reset exists.

    A seeded reset reloads the ROM (ALE seeds its RNG at load time), which costs more than a
    short episode. Restoring a snapshot of the same reset gives the same episode: the same
    observations, rewards and endings, sticky actions included (tests/sandbox/test_emulator.py
    plays both ways on every game and compares).
    """
    snapshot = snapshots.get(seed) if snapshots else None
    if snapshot is None:
        env.reset(seed=seed)
        return
    # No env.reset(): the machine state, frame counters and RNG all come back with the
    # snapshot, and the wrappers have seen a reset already (the snapshot was taken after one).
    ale_of(env).restoreState(snapshot.ale_state)
    env._env.unwrapped._np_random = copy.deepcopy(snapshot.np_random)
    # What OCAtari's reset does after the emulator's: fresh objects, read from the restored RAM.
    from ocatari.ram.extract_ram_info import init_objects

    env.objects = init_objects(env.game_name, env.hud, vision=False)
    env.detect_objects()


def _np_random(env: Any) -> Any:
    return env._env.unwrapped._np_random
