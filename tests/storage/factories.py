"""Builders for the sandbox's evaluation JSON and for policy sources, shared by storage tests.

The dicts follow the sandbox's `summary_dict(with_traces=True)` shape; storage must treat them
as plain dicts, so no sandbox type is used here either.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

PONG_ENV = {"frameskip": 4, "repeat_action_probability": 0.25, "max_steps": 27000}


def policy(number: int) -> str:
    """A distinct, valid policy source per number."""
    return f"def act(obs):\n    # variant {number}\n    return {number % 6}\n"


def pong_trace(steps: int, *, seed: int = 0, snapshots: int = 240) -> dict[str, Any]:
    """A Pong-like episode trace: runs of paddle moves, sparse rewards, a few observations."""
    rng = random.Random(seed)
    actions: list[str] = []
    while len(actions) < steps:
        actions.extend(rng.choice("0023") * rng.randint(1, 12))
    rewards = [[step, rng.choice([-1.0, 1.0])] for step in sorted(rng.sample(range(steps), 21))]
    windows = sorted(rng.sample(range(steps), min(snapshots, steps)))
    return {
        "actions": "".join(actions[:steps]),
        "rewards": rewards,
        "life_losses": [],
        "snapshots": [
            {
                "step": step,
                "obs": {
                    name: {
                        "x": rng.randint(0, 160),
                        "y": rng.randint(30, 200),
                        "w": 4,
                        "h": 16 if name != "Ball" else 2,
                        "dx": rng.randint(-3, 3),
                        "dy": rng.randint(-6, 6),
                    }
                    for name in ("Player", "Ball", "Enemy")
                },
                "action": int(actions[step]),
                "reward": 0.0,
            }
            for step in windows
        ],
        "truncated": False,
    }


def result(
    returns: Sequence[float] = (-21.0,),
    *,
    seeds: Sequence[int] | None = None,
    lengths: Sequence[int] | None = None,
    status: str = "ok",
    episode_statuses: Sequence[str] | None = None,
    game: str = "Pong",
    env: dict[str, Any] | None = None,
    trace_steps: int | None = 50,
) -> dict[str, Any]:
    """An evaluation result dict; `trace_steps=None` leaves the episodes without traces."""
    seeds = list(seeds) if seeds is not None else list(range(len(returns)))
    lengths = list(lengths) if lengths is not None else [800] * len(returns)
    statuses = list(episode_statuses) if episode_statuses is not None else [status] * len(returns)
    episodes = [
        {
            "seed": seed,
            "status": episode_status,
            "return": value,
            "length": length,
            "error": None if episode_status == "ok" else f"{episode_status} at step {length}",
            "wall_seconds": 1.5,
            "policy_cpu_seconds": 0.25,
            "policy_peak_memory_mb": 20.0 + index,
            "output": "",
            "trace": pong_trace(trace_steps, seed=seed) if trace_steps is not None else None,
        }
        for index, (seed, value, length, episode_status) in enumerate(
            zip(seeds, returns, lengths, statuses, strict=True)
        )
    ]
    return {
        "game": game,
        "env": dict(env or PONG_ENV),
        "limits": {"act_seconds": 1.0, "memory_mb": 256},
        "backend": "bwrap",
        "checked": True,
        "status": status,
        "check": {"ok": True, "diagnostics": []},
        "episodes": episodes,
        "wall_seconds": 1.5 * len(episodes),
        "mean_return": sum(returns) / len(returns) if returns else None,
        "returns": list(returns),
        "lengths": lengths,
        "total_steps": sum(lengths),
    }


def rejected_result(game: str = "Pong") -> dict[str, Any]:
    """What the sandbox returns for a program whose static check failed: no episodes."""
    return {
        "game": game,
        "env": dict(PONG_ENV),
        "limits": {},
        "backend": "bwrap",
        "checked": True,
        "status": "rejected",
        "check": {
            "ok": False,
            "diagnostics": [
                {"rule": "import", "line": 1, "column": 0, "message": "import os is not allowed"}
            ],
        },
        "episodes": [],
        "wall_seconds": 0.0,
        "mean_return": None,
        "returns": [],
        "lengths": [],
        "total_steps": 0,
    }
