"""What an evaluation returns, validated on the host.

Everything that comes out of a sandbox is untrusted bytes until it has passed these models: the
harness writes JSON, the host parses it here with size caps, and only then does the rest of
evocade see a result. Never pickle across the boundary.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# One Status for harness and host, defined where the sandbox image (no pydantic) can import it.
from sandbox.runtime.protocol import Status as Status
from sandbox.runtime.protocol import worst as worst
from sandbox.settings import EnvSettings, Limits


class Diagnostic(BaseModel):
    """One static-check finding, phrased so that an LLM can fix the code from it."""

    model_config = ConfigDict(frozen=True)

    rule: str
    line: int
    column: int
    message: str

    def render(self) -> str:
        return f"line {self.line}, col {self.column}: [{self.rule}] {self.message}"


class CheckReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    diagnostics: list[Diagnostic] = Field(default_factory=list)


class Snapshot(BaseModel):
    """One recorded step: what the policy saw, what it did and what it earned."""

    step: int
    obs: dict[str, Any]
    action: int | None
    reward: float


class Trace(BaseModel):
    """A compact record of one episode.

    Every action is kept (one character each, `sandbox.games.ACTION_ALPHABET[i]`), every
    nonzero reward and every life lost with its step; full observations only for the steps just
    before each such event and at the end of the episode, up to a cap. That is what feedback
    needs (what happened right before a point was lost) at a small fraction of a step-by-step
    dump.
    """

    actions: str = ""
    rewards: list[tuple[int, float]] = Field(default_factory=list)
    life_losses: list[int] = Field(default_factory=list)
    snapshots: list[Snapshot] = Field(default_factory=list)
    truncated: bool = False


class EpisodeResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    seed: int
    status: Status
    episode_return: float = Field(alias="return")
    length: int = Field(ge=0)
    step_capped: bool = False  # ended `ok` by reaching the env setting's step cap, not the game
    error: str | None = None
    wall_seconds: float = Field(ge=0)
    policy_cpu_seconds: float = Field(default=0.0, ge=0)
    harness_cpu_seconds: float = Field(default=0.0, ge=0)  # emulator, OCAtari, the pipe
    node: str | None = None  # the machine that played it, when a cluster did (set by the host)
    policy_peak_memory_mb: float = Field(default=0.0, ge=0)
    output: str = ""
    trace: Trace | None = None

    @field_validator("error", "output")
    @classmethod
    def _cap_text(cls, value: str | None) -> str | None:
        if value is not None and len(value) > 8000:
            return value[:4000] + "\n...[trimmed]...\n" + value[-4000:]
        return value


class EvaluationResult(BaseModel):
    """One program x one game x one env setting x a list of seeds."""

    model_config = ConfigDict(populate_by_name=True)

    game: str
    env: EnvSettings
    limits: Limits
    backend: str
    checked: bool
    status: Status
    check: CheckReport | None = None
    episodes: list[EpisodeResult] = Field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def returns(self) -> list[float]:
        return [episode.episode_return for episode in self.episodes]

    @property
    def lengths(self) -> list[int]:
        return [episode.length for episode in self.episodes]

    @property
    def mean_return(self) -> float | None:
        returns = self.returns
        return sum(returns) / len(returns) if returns else None

    @property
    def total_steps(self) -> int:
        return sum(self.lengths)

    def summary_dict(self, *, with_traces: bool = False) -> dict[str, Any]:
        """The `evocade evaluate --json` object (and what storage records)."""
        data = self.model_dump(mode="json", by_alias=True)
        if not with_traces:
            for episode in data["episodes"]:
                episode.pop("trace", None)
        data.update(
            mean_return=self.mean_return,
            returns=self.returns,
            lengths=self.lengths,
            total_steps=self.total_steps,
        )
        return data
