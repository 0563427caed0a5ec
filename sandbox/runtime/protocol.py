"""The words the harness and the host share, in the standard library only (the sandbox image has
no pydantic): how an episode can end, what one episode request holds, and how the harness frames
what it sends back. The host validates everything again with `sandbox.results`.

Host → harness: one request line (`EpisodeSpec` as JSON) once the harness has said it is ready.
Harness → host, one JSON object per line:

    {"ready": true}                  the sandbox is warm: imports done, policy process started
    {"episode": {...}}               the episode's result (`sandbox.results.EpisodeResult`)
    {"harness_exit": N}              written by the sandbox's supervisor after the harness ended
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How one episode (or a whole evaluation) ended; see docs/DESIGN.md §3. Declared from
    best to worst: an evaluation's status is the worst of its episodes'."""

    OK = "ok"
    INVALID_ACTION = "invalid_action"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CRASHED = "crashed"
    REJECTED = "rejected"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {status: rank for rank, status in enumerate(Status)}


def worst(statuses: list[Status]) -> Status:
    """The evaluation's status is the worst of its episodes' (ok when there are none)."""
    return max(statuses, key=lambda status: status.severity, default=Status.OK)


@dataclass(frozen=True)
class EpisodeLimits:
    """The per-episode part of `sandbox.settings.Limits`, as the harness reads it."""

    act_seconds: float
    episode_wall_seconds: float
    episode_cpu_seconds: int
    memory_mb: int
    output_bytes: int
    trace_snapshots: int
    trace_window_steps: int


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode: a program, a game under one env setting, a seed, limits.

    Built by the host from `EpisodeRequest`; parsed here from trusted JSON (the host wrote it),
    so a malformed one is a bug and raises.
    """

    source: str
    restricted: bool
    game: str
    seed: int
    frameskip: int
    repeat_action_probability: float
    max_steps: int
    limits: EpisodeLimits

    def to_json(self) -> str:
        data = {**self.__dict__, "limits": self.limits.__dict__}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> EpisodeSpec:
        data: dict[str, Any] = json.loads(text)
        limits = EpisodeLimits(**data.pop("limits"))
        return cls(limits=limits, **data)

    @property
    def env_setting(self) -> tuple[str, int, float]:
        """What a prepared emulator must match to serve this episode."""
        return (self.game, self.frameskip, self.repeat_action_probability)
