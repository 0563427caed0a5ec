"""The reference paper's feedback: the whole rollout, one line per step with the full observation.

Only `bench_prompt.py` uses it, as the baseline that `engine.feedback.compose_feedback` is
measured against; evocade itself never sends it.
"""

from __future__ import annotations

from typing import Any

Step = tuple[dict[str, Any], int, float]  # (observation, action, reward)


def render_step_by_step(steps: list[Step]) -> str:
    """One line per step: its index, the observation as a Python literal, action and reward."""
    return "\n".join(
        f"step {index}: state={obs!r}, action={action}, reward={reward:g}"
        for index, (obs, action, reward) in enumerate(steps)
    )
