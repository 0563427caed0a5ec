"""What the harness keeps of an episode for the trace: every action and event, and the full
observations only around events (see sandbox/results.py `Trace`), within a fixed budget."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.games import ACTION_ALPHABET


@dataclass
class TraceRecorder:
    """Every action and event; full observations only around events (see results.Trace)."""

    window_steps: int
    max_snapshots: int
    actions: list[str] = field(default_factory=list)
    rewards: list[tuple[int, float]] = field(default_factory=list)
    life_losses: list[int] = field(default_factory=list)
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    truncated: bool = False

    def __post_init__(self) -> None:
        self.recent: deque[tuple[int, dict[str, Any], int, float]] = deque(maxlen=self.window_steps)

    def record(self, step: int, obs: dict[str, Any], action: int, reward: float, event: bool):
        self.actions.append(ACTION_ALPHABET[action])
        self.recent.append((step, obs, action, reward))
        if reward:
            self.rewards.append((step, reward))
        if event:
            self.flush()

    def life_lost(self, step: int) -> None:
        self.life_losses.append(step)

    def flush(self, final_obs: dict[str, Any] | None = None, final_step: int = 0) -> None:
        """Keep the recent window; the episode's last window and final observation always fit,
        because events may only use the room left after reserving space for them."""
        final = final_obs is not None
        room = self.max_snapshots if final else self.max_snapshots - self.window_steps - 1
        for step, obs, action, reward in self.recent:
            if step in self.snapshots:
                continue
            if len(self.snapshots) >= room:
                self.truncated = True
                break
            self.snapshots[step] = {"step": step, "obs": obs, "action": action, "reward": reward}
        self.recent.clear()
        if final and final_step not in self.snapshots and len(self.snapshots) < room:
            self.snapshots[final_step] = {
                "step": final_step,
                "obs": final_obs,
                "action": None,
                "reward": 0.0,
            }

    def to_json(self) -> dict[str, Any]:
        return {
            "actions": "".join(self.actions),
            "rewards": self.rewards,
            "life_losses": self.life_losses,
            "snapshots": [self.snapshots[step] for step in sorted(self.snapshots)],
            "truncated": self.truncated,
        }
