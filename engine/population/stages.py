"""Playing one candidate's evaluation stage: looked up first, else checked and queued, then
recorded once its last episode is in."""

from __future__ import annotations

import time

from engine.config import RunConfig
from engine.population.candidate import Candidate, Stage, stage_setting
from engine.population.progress import LoopState
from engine.population.scheduler import EpisodeQueue
from engine.records import stored_result
from sandbox.evaluate import plan_evaluation
from sandbox.games import Game
from sandbox.results import EpisodeResult, EvaluationResult
from storage import Store


class StagePlayer:
    """Owned by the coordinating thread, like the candidates it works on."""

    def __init__(
        self, store: Store, config: RunConfig, game: Game, episodes: EpisodeQueue, state: LoopState
    ) -> None:
        self.store, self.config, self.game = store, config, game
        self.episodes, self.state = episodes, state

    def start(self, candidate: Candidate, stage: Stage) -> EvaluationResult | None:
        """The stage's result when it needs no episode (stored before: never played twice;
        rejected by the static check: nothing to play), else None with its episodes queued."""
        setting = stage_setting(stage, self.config, self.game)
        assert candidate.program_id is not None
        found = self.store.find_evaluation(candidate.program_id, setting.key, setting.seeds)
        if found is not None:
            return stored_result(self.store, found)
        plan = plan_evaluation(
            candidate.source,
            self.game.name,
            seeds=setting.seeds,
            env=setting.env,
            limits=self.config.limits(),
            check=candidate.check or self.config.check,
        )
        candidate.check = plan.check
        candidate.stage, candidate.plan, candidate.episodes = stage, plan, {}
        candidate.stage_started = time.monotonic()
        if not plan.requests:
            return self._record(candidate, stage, plan.result(self.episodes.runner.name, [], 0.0))
        for index, request in enumerate(plan.requests):
            self.episodes.submit(candidate.priority(), request, (candidate.iteration, stage, index))
        return None

    def episode_done(
        self, candidate: Candidate, stage: Stage, index: int, episode: EpisodeResult
    ) -> EvaluationResult | None:
        """The stage's recorded result once this was its last episode, else None."""
        if candidate.stage != stage or candidate.plan is None:
            return None  # a stage already over (a stale episode)
        candidate.episodes[index] = episode
        count = len(candidate.plan.requests)
        if len(candidate.episodes) < count:
            return None
        episodes = [candidate.episodes[i] for i in range(count)]
        wall = time.monotonic() - candidate.stage_started
        result = candidate.plan.result(self.episodes.runner.name, episodes, wall)
        return self._record(candidate, stage, result)

    def _record(
        self, candidate: Candidate, stage: Stage, result: EvaluationResult
    ) -> EvaluationResult:
        setting = stage_setting(stage, self.config, self.game)
        assert candidate.program_id is not None
        self.store.record_evaluation(
            candidate.program_id,
            result.summary_dict(with_traces=True),
            seeds=setting.seeds,
            holdout=setting.holdout,
        )
        self.state.env_steps += result.total_steps
        return result
