"""The emulator as every part of evocade builds it: the harness in the sandbox, replays and
verification on the host, and the benchmarks. One construction, so that a stored action log
replays to exactly the episode the harness played (ALE is deterministic given the reset seed,
the env setting and the actions, sticky actions included).

Runs inside the sandbox image too, so it imports nothing but the emulator stack.
"""

from __future__ import annotations

from typing import Any

from sandbox.games import get_game


def make_env(
    game_name: str, frameskip: int, repeat_action_probability: float, *, render: bool = False
) -> Any:
    """An OCAtari env in RAM mode; `render=True` adds RGB frames (`env.render()`) for replays."""
    from ocatari.core import OCAtari

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
