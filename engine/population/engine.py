"""The population engine: K candidates in flight, their episodes on one pool of sandbox slots.

One coordinating thread owns all state and every decision; proposers (LLM calls, mutations)
run on threads of their own, episodes on the episode queue's slot threads, and both report
back through one inbox. So a slow LLM call never idles a core while any episode waits, and
the decisions stay those of `engine.selection`, applied one at a time in the order candidates
finish. Everything is committed as it happens (programs, evaluations, LLM calls, one
`iteration` event per decided proposal carrying its island's state), which is what
`engine.population.resume` rebuilds a killed run from.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any

from engine.config import RunConfig
from engine.feedback import compose_feedback
from engine.population.budgets import budget_reason
from engine.population.candidate import SEED, Candidate, Stage
from engine.population.context import proposal_context
from engine.population.decisions import Deciding, mean_of
from engine.population.ledger import CallLedger
from engine.population.progress import LoopState, Reporter, StopRequest
from engine.population.resume import RunPosition
from engine.population.scheduler import EpisodeQueue
from engine.population.stages import StagePlayer
from engine.proposers.base import Proposal, Proposer
from engine.selection import (
    IslandState,
    Policy,
    is_promising,
    next_island,
)
from sandbox.episodes import EpisodeRunner, RunnerClosed
from sandbox.games import Game
from sandbox.results import EpisodeResult, EvaluationResult, Status
from storage import Store


class Population(Deciding):
    """Drives one run from its current position until it is done or told to stop."""

    def __init__(
        self,
        store: Store,
        config: RunConfig,
        game: Game,
        proposer: Proposer,
        runner: EpisodeRunner,
        reporter: Reporter,
        stop: StopRequest,
        run_id: str,
    ) -> None:
        self.store, self.config, self.game = store, config, game
        self.proposer, self.runner, self.reporter, self.stop = proposer, runner, reporter, stop
        self.run_id = run_id
        self.policy = Policy(
            config.selection_rule,
            config.regress_ratio,
            config.regress_patience,
            holdout=config.holdout_episodes > 0,
        )
        self.inbox: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        self.episodes = EpisodeQueue(runner, lambda tag, out: self.inbox.put(("episode", tag, out)))
        self.limit = config.in_flight(runner.slots)
        # With the LLM proposer and no --concurrency, the limit follows the measured proposal
        # latency and evaluation cost (engine.population.scheduler.candidates_to_keep).
        self.adaptive = config.concurrency is None and config.proposer == "llm"
        self.proposal_seconds = 0.0  # moving average
        self.evaluated = 0  # candidates that reached a decision with a program
        self.islands: list[IslandState] = []
        self.in_flight: dict[int, Candidate] = {}
        self.to_propose: deque[int] = deque()
        self.next_iteration = 0
        usage = store.run_usage(run_id)
        self.state = LoopState(
            run_id,
            env_steps=usage.env_steps,
            tokens=usage.tokens,
            cost=usage.cost,
            env_steps_start=usage.env_steps,
        )
        self.wall_before = 0.0
        self.stopping: str | None = None
        self.abandoned = False
        self.deferred: list[tuple[Candidate, Stage, EvaluationResult]] = []
        # Candidates whose program another candidate in flight is playing the same stage of
        # (a proposer may propose a program twice; one source is one stored program): they
        # take the stored result once it is in, so no evaluation is played or stored twice.
        self.waiting: dict[tuple[str, Stage], list[Candidate]] = {}
        self.calls = CallLedger(store, run_id)
        self.stages = StagePlayer(store, config, game, self.episodes, self.state)

    # -- the coordinating loop ---------------------------------------------------------------

    def start(self, seed_id: str, seed_source: str) -> None:
        seed = Candidate(SEED, 0, seed_id, program_id=seed_id, source=seed_source)
        self.in_flight[SEED] = seed
        if self.config.proposer == "mutate":
            # A mutation needs only the parent's source, so proposals start while the seed is
            # played (their decisions wait for it); an LLM's prompt needs the seed's feedback.
            self.islands = [IslandState(seed_id, None) for _ in range(self.config.islands)]
        self._start_stage(seed, "smoke")

    def resume(self, position: RunPosition, seed_id: str, seed_source: str) -> None:
        self.state.iteration = self.state.iteration_start = len(position.decided)
        self.wall_before = position.wall_seconds
        self.next_iteration = position.next_iteration
        self.to_propose.extend(position.to_propose)
        if position.islands is None:
            self.start(seed_id, seed_source)
        else:
            self.islands = position.islands
        for program in position.in_flight:
            source = self.store.get_program(program.program_id).source
            candidate = Candidate(
                program.iteration,
                min(program.island, self.config.islands - 1),
                program.parent_id or seed_id,
                program_id=program.program_id,
                source=source,
                note="resumed",
            )
            self.in_flight[program.iteration] = candidate
            self._start_stage(candidate, "smoke")  # decisions wait for the seed if need be

    def run(self) -> str:
        """Until every proposal is decided, or a stop request or budget; returns the reason."""
        while True:
            self._check_stop()
            if self.stopping is None and self.islands:
                self._fill()
            if not self.in_flight or self.abandoned:
                return self.stopping or "iterations"
            try:
                kind, tag, outcome = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "episode":
                self._on_episode(tag, outcome)
            elif kind == "proposed":
                self._on_proposal(tag, outcome)

    def close(self) -> None:
        self.episodes.close()

    def wall_seconds(self) -> float:
        return self.wall_before + time.monotonic() - self.state.started

    def _check_stop(self) -> None:
        if self.stop and self.stopping is None:
            self.stopping = f"stopped: {self.stop.reason}"
            self._cancel_proposals()
            if self.in_flight:
                self.reporter.message(
                    f"stopping: finishing {len(self.in_flight)} candidate(s) in flight "
                    "(again to abandon them; they resume with --resume)"
                )
        if self.stop.count >= 2 and not self.abandoned:
            self._abandon()
        if self.stopping is None:
            elapsed = time.monotonic() - self.state.started
            state = self.state
            self.stopping = budget_reason(
                self.config, state.env_steps, state.tokens, state.cost, elapsed
            )
            if self.stopping is not None:
                self.store.add_event(self.run_id, "budget_hit", self.stopping)
                self._cancel_proposals()
                self._abandon()  # a budget stops at once: nothing more is played

    def _abandon(self) -> None:
        """Leave the candidates in flight as they are: what they committed stays, what they
        were playing is not recorded, and `--resume` finishes them."""
        self.abandoned = True
        self.episodes.close()

    def _cancel_proposals(self) -> None:
        cancel = getattr(self.proposer, "cancel", None)
        if callable(cancel) and any(c.stage is None for c in self.in_flight.values()):
            cancel()

    # -- proposing ---------------------------------------------------------------------------

    def _fill(self) -> None:
        while len(self.in_flight) < self.limit:
            if self.to_propose:
                number = self.to_propose.popleft()
            elif self.next_iteration < self.config.iterations:
                number = self.next_iteration
                self.next_iteration += 1
            else:
                return
            busy = [c.island for c in self.in_flight.values() if c.iteration != SEED]
            island = next_island(self.islands, busy, number)
            parent_id = self.islands[island].head_id
            candidate = Candidate(number, island, parent_id)
            self.in_flight[number] = candidate
            context = proposal_context(
                self.store, self.config, self.game, self.islands[island], number, self.calls.record
            )
            threading.Thread(
                target=self._propose, args=(number, context), name=f"propose-{number}", daemon=True
            ).start()

    def _propose(self, number: int, context: Any) -> None:
        try:
            outcome: Proposal | BaseException = self.proposer.propose(context)
        except BaseException as error:  # reported to the coordinator, which raises it
            outcome = error
        self.inbox.put(("proposed", number, outcome))

    def _on_proposal(self, number: int, outcome: Proposal | BaseException) -> None:
        candidate = self.in_flight.get(number)
        if candidate is None:
            return
        if isinstance(outcome, BaseException):
            raise outcome
        latency = time.monotonic() - candidate.stage_started
        self.proposal_seconds = (
            latency if not self.proposal_seconds else (0.7 * self.proposal_seconds + 0.3 * latency)
        )
        tokens, cost = self.calls.settle(outcome, candidate.parent_id)
        self.state.tokens += tokens
        self.state.cost += cost
        if outcome.cancelled:  # shutdown: proposed again on resume, not an outcome
            del self.in_flight[number]
            return
        dead = self.calls.dead_endpoint(outcome)
        if dead is not None and self.stopping is None:
            self.stopping = dead
            self._cancel_proposals()
        if outcome.source is None:
            candidate.note = outcome.note
            self._decide_failure(
                candidate, f"Your last proposal produced no program: {outcome.note}"
            )
            return
        parent = self.store.get_program(candidate.parent_id)
        program = self.store.add_program(
            self.run_id,
            outcome.source,
            origin=outcome.origin,
            parent_id=candidate.parent_id,
            generation=parent.generation + 1,
            note=outcome.note[:2000] or None,
            island=candidate.island,
            iteration=number,
        )
        self.calls.link(outcome, program.id)
        candidate.program_id, candidate.source = program.id, outcome.source
        candidate.note = outcome.note
        self._start_stage(candidate, "smoke")

    # -- evaluating --------------------------------------------------------------------------

    def _start_stage(self, candidate: Candidate, stage: Stage) -> None:
        assert candidate.program_id is not None
        if self._playing(candidate.program_id, stage):
            candidate.stage = stage
            self.waiting.setdefault((candidate.program_id, stage), []).append(candidate)
            return
        result = self.stages.start(candidate, stage)
        if result is not None:
            self._stage_done(candidate, stage, result)

    def _playing(self, program_id: str, stage: Stage) -> bool:
        return any(
            other.program_id == program_id and other.stage == stage and other.plan is not None
            for other in self.in_flight.values()
        )

    def _on_episode(self, tag: tuple[int, Stage, int], outcome: Any) -> None:
        number, stage, index = tag
        if isinstance(outcome, RunnerClosed):
            return  # abandoned: nothing half-finished is recorded
        if isinstance(outcome, BaseException):
            raise outcome
        candidate = self.in_flight.get(number)
        if candidate is None:
            return
        assert isinstance(outcome, EpisodeResult)
        result = self.stages.episode_done(candidate, stage, index, outcome)
        if result is not None:
            self._stage_done(candidate, stage, result)

    def _stage_done(self, candidate: Candidate, stage: Stage, result: EvaluationResult) -> None:
        candidate.results[stage] = result
        candidate.stage, candidate.plan = None, None
        assert candidate.program_id is not None
        for waiting in self.waiting.pop((candidate.program_id, stage), []):
            self._start_stage(waiting, stage)  # stored now: looked up, not played
        clean = result.status == Status.OK
        if (
            candidate.iteration != SEED
            and SEED in self.in_flight
            and not (stage == "smoke" and clean)
        ):
            self.deferred.append((candidate, stage, result))  # what follows needs the seed's score
            return
        if stage == "smoke" and clean:
            self._start_stage(candidate, "train")
        elif stage == "train" and clean and self._wants_holdout(candidate, result):
            self._start_stage(candidate, "holdout")
        elif candidate.iteration == SEED:
            self._decide_seed(candidate)
        elif "train" in candidate.results and candidate.results["train"].status == Status.OK:
            self._decide_clean(candidate)
        else:
            feedback = (
                "Your last proposal failed and was discarded (the program below is still the "
                f"current one):\n```python\n{candidate.source.strip()}\n```\n"
                + compose_feedback(result, self.game)
            )
            self._decide_failure(candidate, feedback, result)

    def _wants_holdout(self, candidate: Candidate, train: EvaluationResult) -> bool:
        if not self.policy.holdout:
            return False
        if candidate.iteration == SEED:
            return True
        return is_promising(mean_of(train), self.islands[candidate.island])

    # -- deciding ----------------------------------------------------------------------------
