"""Deciding: what a finished candidate changes, committed as one `iteration` event.

A mixin of `engine.population.engine.Population` (the coordinating thread owns both): the rules
are `engine.selection`'s pure functions; this applies them to the run's islands, stores the
outcome, migrates between islands and reports.
"""

from __future__ import annotations

from collections import deque

from engine.config import RunConfig
from engine.formatting import number
from engine.population.candidate import SEED, Candidate, Stage
from engine.population.progress import IterationReport, LoopState, Reporter
from engine.population.scheduler import EpisodeQueue, candidates_to_keep
from engine.selection import (
    Champion,
    IslandState,
    Policy,
    after_failure,
    decide,
    migration,
    reseeded,
    run_best,
)
from sandbox.episodes import EpisodeRunner
from sandbox.results import EvaluationResult, Status
from storage import Store

FEEDBACK_CAP = 6000  # characters of a failure's feedback kept for the island's next prompt


class Deciding:
    """The decision half of the engine; the state it works on is the engine's."""

    store: Store
    config: RunConfig
    run_id: str
    reporter: Reporter
    runner: EpisodeRunner
    episodes: EpisodeQueue
    policy: Policy
    state: LoopState
    islands: list[IslandState]
    in_flight: dict[int, Candidate]
    deferred: list[tuple[Candidate, Stage, EvaluationResult]]
    limit: int
    adaptive: bool
    proposal_seconds: float
    evaluated: int
    to_propose: deque[int]

    def _stage_done(self, candidate: Candidate, stage: Stage, result: EvaluationResult) -> None:
        raise NotImplementedError  # the engine's: where a deferred candidate goes on

    def wall_seconds(self) -> float:
        raise NotImplementedError

    def _decide_seed(self, seed: Candidate) -> None:
        assert seed.program_id is not None
        train = seed.results.get("train")
        best = None
        if train is not None and train.status == Status.OK:
            holdout = seed.results.get("holdout")
            held = mean_of(holdout) if holdout and holdout.status == Status.OK else None
            best = Champion(seed.program_id, mean_of(train), held)
        self.islands = [IslandState(seed.program_id, best) for _ in range(self.config.islands)]
        self.store.set_head(self.run_id, seed.program_id)
        self.store.add_event(
            self.run_id,
            "population",
            f"{self.config.islands} island(s) start from seed {seed.label}",
            data={"islands": [island.to_json() for island in self.islands]},
        )
        del self.in_flight[SEED]
        shown = train or seed.results["smoke"]
        confirmed = best.holdout_mean if best else None
        also = f", held-out {number(confirmed)}" if confirmed is not None else ""
        mean = number(shown.mean_return)
        self.reporter.message(
            f"seed program {seed.label}: {shown.status}, mean return {mean}{also}"
        )
        deferred, self.deferred = self.deferred, []
        for candidate, stage, result in deferred:
            self._stage_done(candidate, stage, result)

    def _decide_clean(self, candidate: Candidate) -> None:
        assert candidate.program_id is not None
        holdout = candidate.results.get("holdout")
        held = mean_of(holdout) if holdout is not None and holdout.status == Status.OK else None
        train = candidate.results["train"]
        island = self.islands[candidate.island]
        decision = decide(island, candidate.program_id, mean_of(train), self.policy, held)
        if decision.became_head or decision.rolled_back_to:
            self.store.set_head(self.run_id, decision.island.head_id)
        note = candidate.note
        if decision.became_best and held is not None:
            note = f"new best on held-out seeds ({number(held)}); {note}"
        self._commit(candidate, decision.island, str(train.status), train.mean_return, held, note)
        if decision.rolled_back_to:
            best = decision.island.best
            assert best is not None
            self.store.add_event(
                self.run_id,
                "rollback",
                f"island {candidate.island}: rollback to best {best.program_id[:8]} "
                f"({number(best.score)}) after {self.config.regress_patience} regressions in a row",
                data={"island": candidate.island, "to": best.program_id},
            )

    def _decide_failure(
        self, candidate: Candidate, feedback: str, result: EvaluationResult | None = None
    ) -> None:
        state = after_failure(self.islands[candidate.island], feedback[:FEEDBACK_CAP])
        status = str(result.status) if result is not None else "no_program"
        self._commit(candidate, state, status, result.mean_return if result else None, None)

    def _commit(
        self,
        candidate: Candidate,
        island: IslandState,
        status: str,
        mean: float | None,
        held: float | None,
        note: str | None = None,
    ) -> None:
        """The decision's commit point: the `iteration` event, with the island's new state."""
        self.islands[candidate.island] = island
        self.state.iteration += 1
        self._adapt(candidate)
        note = candidate.note if note is None else note
        self.store.add_event(
            self.run_id,
            "iteration",
            f"iteration {candidate.iteration}: {status}",
            data={
                "iteration": candidate.iteration,
                "program": candidate.program_id,
                "island": candidate.island,
                "status": status,
                "mean_return": mean,
                "holdout_mean": held,
                "regressions": island.regressions,
                "env_steps": self.state.env_steps,
                "tokens": self.state.tokens,
                "cost": self.state.cost,
                "wall_seconds": round(self.wall_seconds(), 3),
                "note": note[:500],
                "island_state": island.to_json(),
            },
        )
        del self.in_flight[candidate.iteration]
        self._migrate()
        self.store.checkpoint()
        best = run_best(self.islands)
        report = IterationReport(
            candidate.iteration,
            candidate.program_id,
            status,
            mean,
            best.train_mean if best else None,
            island.head_id,
            note,
            island=candidate.island,
            holdout_mean=held,
            best_holdout=best.holdout_mean if best else None,
        )
        self.state.in_flight = len(self.in_flight)
        self.state.busy = self.episodes.busy_fraction()
        self.reporter.iteration(report, self.state)

    def _adapt(self, candidate: Candidate) -> None:
        if candidate.program_id is not None:
            self.evaluated += 1
        if self.adaptive and self.evaluated:
            per_candidate = self.episodes.busy_seconds() / self.evaluated
            slots = self.runner.slots
            self.limit = candidates_to_keep(
                slots, self.proposal_seconds, per_candidate, cap=8 * slots
            )

    def _migrate(self) -> None:
        move = migration(self.islands, self.state.iteration, self.config.migrate_every)
        if move is None:
            return
        donor, receiver = move
        state = reseeded(self.islands[donor])
        self.islands[receiver] = state
        self.store.add_event(
            self.run_id,
            "migration",
            f"island {receiver} reseeded from island {donor}'s best {state.head_id[:8]}",
            data={"from": donor, "to": receiver, "state": state.to_json()},
        )


def mean_of(result: EvaluationResult | None) -> float:
    value = result.mean_return if result is not None else None
    return value if value is not None else float("-inf")
