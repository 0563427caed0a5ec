"""A candidate in flight, and the evaluation stages it goes through.

    smoke   one short episode on the first training seed: a crash costs little
    train   the full training seeds: the score selection compares
    holdout held-out seeds, only for a candidate that beat its island's best on training

Each stage is one stored evaluation, looked up before it is played, so a resumed candidate
picks up after its last committed stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from engine.config import RunConfig
from sandbox.evaluate import EvaluationPlan
from sandbox.games import Game
from sandbox.results import CheckReport, EpisodeResult, EvaluationResult
from sandbox.settings import EnvSettings
from storage import env_key, holdout_env_key

Stage = Literal["smoke", "train", "holdout"]
SEED = -1  # the seed program's key among the candidates in flight
STAGE_ORDER: dict[Stage, int] = {"holdout": 0, "train": 1, "smoke": 2}


@dataclass(frozen=True)
class StageSetting:
    env: EnvSettings
    seeds: list[int]
    key: str  # the stored evaluation's env key

    @property
    def holdout(self) -> bool:
        return self.key.endswith(" holdout")


def stage_setting(stage: Stage, config: RunConfig, game: Game) -> StageSetting:
    if stage == "smoke":
        env = config.smoke_env()
        return StageSetting(env, config.seeds[:1], env_key(game.name, env.model_dump()))
    env = config.full_env()
    if stage == "train":
        return StageSetting(env, config.seeds, env_key(game.name, env.model_dump()))
    return StageSetting(env, config.holdout_seeds, holdout_env_key(game.name, env.model_dump()))


@dataclass
class Candidate:
    """One proposal on its way to a decision (owned by the engine's coordinating thread)."""

    iteration: int
    island: int
    parent_id: str
    program_id: str | None = None
    source: str = ""
    note: str = ""
    stage: Stage | None = None  # None while the proposer works
    plan: EvaluationPlan | None = None
    episodes: dict[int, EpisodeResult] = field(default_factory=dict)
    check: CheckReport | None = None
    results: dict[Stage, EvaluationResult] = field(default_factory=dict)
    stage_started: float = field(default_factory=time.monotonic)
    exchange_ids: list[str] = field(default_factory=list)

    def priority(self) -> tuple[int, int]:
        """Older candidates first; within one, the stage closest to a decision first."""
        return (self.iteration, STAGE_ORDER[self.stage or "smoke"])

    @property
    def label(self) -> str:
        return (self.program_id or "-")[:8]
