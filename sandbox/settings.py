"""Env settings and resource limits: frozen, typed, with units in the names.

The defaults are the safe ones: a limit is always on unless the caller raises it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_REPEAT_ACTION_PROBABILITY = 0.25  # ALE v5 convention: sticky actions
DEFAULT_FRAMESKIP = 4
DEFAULT_MAX_STEPS = 27_000  # = ALE v5's 108,000-frame episode cap at frameskip 4


class EnvSettings(BaseModel):
    """How the emulator is configured. Two evaluations are comparable only with equal settings.

    `deterministic()` is frameskip 4 without sticky actions: what the reference paper used with
    `*NoFrameskip-v4`, so its numbers are comparable.
    """

    model_config = ConfigDict(frozen=True)

    frameskip: int = Field(default=DEFAULT_FRAMESKIP, ge=1, le=16)
    repeat_action_probability: float = Field(
        default=DEFAULT_REPEAT_ACTION_PROBABILITY, ge=0.0, le=1.0
    )
    max_steps: int = Field(default=DEFAULT_MAX_STEPS, ge=1)

    @classmethod
    def deterministic(cls, max_steps: int = DEFAULT_MAX_STEPS) -> EnvSettings:
        return cls(frameskip=DEFAULT_FRAMESKIP, repeat_action_probability=0.0, max_steps=max_steps)

    @property
    def label(self) -> str:
        return (
            f"frameskip={self.frameskip},sticky={self.repeat_action_probability:g},"
            f"max_steps={self.max_steps}"
        )


class Limits(BaseModel):
    """Resource limits for one episode's policy process and its sandbox."""

    model_config = ConfigDict(frozen=True)

    act_seconds: float = Field(default=1.0, gt=0, description="wall time for one act() call")
    episode_wall_seconds: float = Field(default=600.0, gt=0)
    episode_cpu_seconds: int = Field(default=300, gt=0, description="policy process CPU time")
    memory_mb: int = Field(default=256, ge=32, description="policy process address space")
    sandbox_memory_mb: int = Field(
        default=1024, ge=128, description="cgroup limit for the whole sandbox (harness included)"
    )
    pids: int = Field(default=32, ge=4, description="cgroup pids limit for the whole sandbox")
    output_bytes: int = Field(default=16_384, ge=0, description="policy prints kept per episode")
    tmpfs_mb: int = Field(default=16, ge=1)
    trace_snapshots: int = Field(default=240, ge=0, description="full-observation steps kept")
    trace_window_steps: int = Field(default=8, ge=1, description="steps kept before each event")
