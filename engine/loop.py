"""The optimization loop, top to bottom: propose → check → evaluate → record → feedback → select.

    outcome = optimize(store, config, proposer)

Every step lands in storage as it happens (programs, evaluations with traces, LLM calls, one
`iteration` event per proposal), so a run killed at any moment resumes from what was
committed: `optimize(store, config, proposer, run_id=...)`. Evaluations are looked up before
they are played, so nothing committed is ever computed twice.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.config import RunConfig
from engine.feedback import compose_feedback
from engine.proposers.base import Proposal, ProposalContext, Proposer, ScoredSource
from engine.records import stored_result
from sandbox.evaluate import evaluate
from sandbox.games import Game, get_game
from sandbox.results import EvaluationResult, Status
from sandbox.settings import EnvSettings
from storage import Store
from storage.encode import env_key


@dataclass
class LoopState:
    """What the loop carries from one iteration to the next (rebuilt from storage on resume)."""

    run_id: str
    iteration: int = 0
    regressions: int = 0
    env_steps: int = 0
    tokens: int = 0
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    last_failure: str = ""  # feedback on the last candidate that failed, for the next prompt


@dataclass(frozen=True)
class IterationReport:
    iteration: int
    program_id: str | None
    status: str  # the candidate's evaluation status, or "no_program"
    mean_return: float | None
    best_mean: float | None
    head_id: str | None
    note: str


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    reason: str
    best_program_id: str | None
    best_mean: float | None
    iterations: int


class Reporter(Protocol):
    def iteration(self, report: IterationReport, state: LoopState) -> None: ...

    def message(self, text: str) -> None: ...


class SilentReporter:
    def iteration(self, report: IterationReport, state: LoopState) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class StopRequest:
    """Set by SIGINT/SIGTERM: the loop finishes the evaluation in hand, records it, and stops."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = threading.Event()

    def request(self, reason: str) -> None:
        self.reason = reason
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: Any) -> None:
            self.request(f"received {signal.Signals(signum).name}")

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)


def optimize(
    store: Store,
    config: RunConfig,
    proposer: Proposer,
    *,
    run_id: str | None = None,
    seed_program: str | None = None,
    reporter: Reporter | None = None,
    stop: StopRequest | None = None,
) -> RunOutcome:
    """Run (or resume) an optimization until a budget, the iteration count or a stop request."""
    reporter = reporter or SilentReporter()
    stop = stop if stop is not None else StopRequest()
    game = get_game(config.game)
    if run_id is None:
        state = _start_run(store, config, game, seed_program, reporter)
    else:
        state = _resume_run(store, run_id, config, game, reporter)

    reason = _stop_reason(config, state, stop)
    while reason is None:
        # 1. propose, building on the head with feedback on it (and on the last failure)
        run = store.get_run(state.run_id)
        head = store.get_program(run.head_program_id or "")
        head_result = _latest_full_result(store, head.id, config, game)
        context = ProposalContext(
            game=game,
            parent=ScoredSource(
                head.source, head_result.mean_return if head_result else None, head.id[:8]
            ),
            feedback=_feedback_for(head_result, game, state.last_failure),
            best=_best_sources(store, state.run_id, config, game),
            iteration=state.iteration,
        )
        proposal = proposer.propose(context)

        # 2-4. check, evaluate in stages, record; 5. select the next head
        report = _try_proposal(store, config, game, state, head.id, proposal)
        state.iteration += 1
        store.add_event(
            state.run_id,
            "iteration",
            f"iteration {report.iteration}: {report.status}",
            data={
                "iteration": report.iteration,
                "program": report.program_id,
                "status": report.status,
                "mean_return": report.mean_return,
                "regressions": state.regressions,
                "env_steps": state.env_steps,
                "tokens": state.tokens,
                "cost": state.cost,
                "note": report.note[:500],
            },
        )
        reporter.iteration(report, state)
        reason = _stop_reason(config, state, stop)

    return _finish(store, config, game, state, reason, reporter)


# -- the steps --------------------------------------------------------------------------------


def _start_run(
    store: Store, config: RunConfig, game: Game, seed_program: str | None, reporter: Reporter
) -> LoopState:
    from engine.seeds import seed_source

    run = store.create_run(game.name, config.full_env().model_dump(), config.to_json())
    state = LoopState(run_id=run.id)
    source = seed_program if seed_program is not None else seed_source(game.name)
    _evaluate_seed(store, config, game, state, source, reporter)
    return state


def _evaluate_seed(
    store: Store,
    config: RunConfig,
    game: Game,
    state: LoopState,
    source: str,
    reporter: Reporter,
) -> None:
    program = store.add_program(
        state.run_id, source, origin="seed", generation=0, note="starter policy"
    )
    result = _evaluate_staged(store, config, game, state, program.id, source)
    store.set_head(state.run_id, program.id)
    reporter.message(
        f"seed program {program.id[:8]}: {result.status}, mean return {_fmt(result.mean_return)}"
    )


def _resume_run(
    store: Store, run_id: str, config: RunConfig, game: Game, reporter: Reporter
) -> LoopState:
    run = store.resolve_run(run_id)  # a unique prefix is enough
    if run.status == "running":
        store.add_event(
            run.id,
            "crash_recovery",
            "the previous process ended without stopping the run; resuming",
        )
    store.set_status(run.id, "running", "resumed")
    state = LoopState(run_id=run.id)
    iterations = [e for e in store.events(run.id) if e.kind == "iteration"]
    if iterations:
        last = iterations[-1].data or {}
        state.iteration = len(iterations)
        state.regressions = int(last.get("regressions", 0))
        state.env_steps = int(last.get("env_steps", 0))
        state.tokens = int(last.get("tokens", 0))
        state.cost = float(last.get("cost", 0.0))
    if run.head_program_id is None:  # killed before the seed program was evaluated
        seed = next((p for p in store.history(run.id) if p.origin == "seed"), None)
        source = store.get_program(seed.program_id).source if seed else None
        from engine.seeds import seed_source

        _evaluate_seed(store, config, game, state, source or seed_source(game.name), reporter)
    reporter.message(f"resuming run {run.id[:8]} at iteration {state.iteration}")
    return state


def _try_proposal(
    store: Store,
    config: RunConfig,
    game: Game,
    state: LoopState,
    parent_id: str,
    proposal: Proposal,
) -> IterationReport:
    iteration = state.iteration
    program_id = None
    if proposal.source is not None:
        parent = store.get_program(parent_id)
        program = store.add_program(
            state.run_id,
            proposal.source,
            origin=proposal.origin,
            parent_id=parent_id,
            generation=parent.generation + 1,
            note=proposal.note[:2000] or None,
        )
        program_id = program.id
    for exchange in proposal.exchanges:
        store.record_llm_call(
            state.run_id,
            prompt=exchange.prompt,
            model=exchange.model,
            response=exchange.response,
            tokens_in=exchange.tokens_in,
            tokens_out=exchange.tokens_out,
            latency_seconds=exchange.latency_seconds,
            cost=exchange.cost,
            error=exchange.error,
            parent_program_id=parent_id,
            produced_program_id=program_id,
        )
        state.tokens += (exchange.tokens_in or 0) + (exchange.tokens_out or 0)
        state.cost += exchange.cost or 0.0
    best = store.best_program(state.run_id, _full_key(config, game))
    best_mean = best.mean_return if best else None

    if proposal.source is None or program_id is None:
        state.last_failure = f"Your last proposal produced no program: {proposal.note}"
        return IterationReport(
            iteration, None, "no_program", None, best_mean, parent_id, proposal.note
        )

    result = _evaluate_staged(store, config, game, state, program_id, proposal.source)
    if result.status != Status.OK or result.env.max_steps != config.max_steps:
        state.last_failure = (
            "Your last proposal failed and was discarded (the program below is still the "
            f"current one):\n```python\n{proposal.source.strip()}\n```\n"
            + compose_feedback(result, game)
        )
        return IterationReport(
            iteration,
            program_id,
            str(result.status),
            result.mean_return,
            best_mean,
            parent_id,
            proposal.note,
        )

    state.last_failure = ""
    mean = result.mean_return if result.mean_return is not None else float("-inf")
    head_id = _select(store, config, state, program_id, mean, best)
    best = store.best_program(state.run_id, _full_key(config, game))
    return IterationReport(
        iteration,
        program_id,
        str(result.status),
        result.mean_return,
        best.mean_return if best else None,
        head_id,
        proposal.note,
    )


def _select(
    store: Store, config: RunConfig, state: LoopState, program_id: str, mean: float, best: Any
) -> str:
    """Pick the next head after a clean full evaluation; returns it.

    A candidate regresses when it scores below best - (1 - regress_ratio) * |best| (for
    positive scores: below 0.8 x best, the paper's rule). Under "follow" the candidate becomes
    the head anyway, and after `regress_patience` regressions in a row the head rolls back to
    the best program (a `revert` event says so; nothing is lost). Under "greedy" a regressing
    candidate never becomes the head.
    """
    regressed = False
    if best is not None and mean < best.mean_return:
        slack = (1 - config.regress_ratio) * max(abs(best.mean_return), 1.0)
        regressed = mean < best.mean_return - slack
    state.regressions = state.regressions + 1 if regressed else 0
    run = store.get_run(state.run_id)
    if config.selection_rule == "greedy" and (best is not None and mean < best.mean_return):
        return run.head_program_id or program_id
    store.set_head(state.run_id, program_id)
    if state.regressions >= config.regress_patience:
        store.revert(
            state.run_id,
            best.program_id,
            f"rollback to best {best.program_id[:8]} ({_fmt(best.mean_return)}) after "
            f"{state.regressions} regressions in a row",
        )
        state.regressions = 0
        return best.program_id
    return program_id


def _evaluate_staged(
    store: Store, config: RunConfig, game: Game, state: LoopState, program_id: str, source: str
) -> EvaluationResult:
    """Static check and one short smoke episode first; the full seed set only if that ran clean.

    A rejected program costs no episode; a crashing one costs one short episode.
    """
    smoke = _evaluate_once(
        store, config, game, state, program_id, source, config.smoke_env(), config.seeds[:1]
    )
    if smoke.status != Status.OK:
        return smoke
    return _evaluate_once(
        store, config, game, state, program_id, source, config.full_env(), config.seeds
    )


def _evaluate_once(
    store: Store,
    config: RunConfig,
    game: Game,
    state: LoopState,
    program_id: str,
    source: str,
    env: EnvSettings,
    seeds: list[int],
) -> EvaluationResult:
    existing = store.find_evaluation(program_id, env_key(game.name, env.model_dump()), seeds)
    if existing is not None:
        return stored_result(store, existing)
    result = evaluate(
        source,
        game.name,
        seeds=seeds,
        env=env,
        limits=config.limits(),
        backend=config.sandbox,
        check=config.check,
    )  # type: ignore[arg-type]
    store.record_evaluation(program_id, result.summary_dict(with_traces=True), seeds=seeds)
    state.env_steps += result.total_steps
    return result


def _finish(
    store: Store,
    config: RunConfig,
    game: Game,
    state: LoopState,
    reason: str,
    reporter: Reporter,
) -> RunOutcome:
    if reason == "iterations":
        store.set_status(state.run_id, "finished", f"{config.iterations} iterations done")
    else:
        if reason.startswith("budget"):
            store.add_event(state.run_id, "budget_hit", reason)
        store.set_status(state.run_id, "stopped", reason)
    best = store.best_program(state.run_id, _full_key(config, game))
    reporter.message(
        f"run {state.run_id[:8]} {reason}: best program "
        f"{best.program_id[:8] if best else '-'} with mean return "
        f"{_fmt(best.mean_return if best else None)}"
    )
    return RunOutcome(
        state.run_id,
        reason,
        best.program_id if best else None,
        best.mean_return if best else None,
        state.iteration,
    )


# -- helpers ----------------------------------------------------------------------------------


def _stop_reason(config: RunConfig, state: LoopState, stop: StopRequest) -> str | None:
    if stop:
        return f"stopped: {stop.reason}"
    if state.iteration >= config.iterations:
        return "iterations"
    if config.max_env_steps is not None and state.env_steps >= config.max_env_steps:
        return f"budget: {state.env_steps} env steps >= {config.max_env_steps}"
    if config.max_tokens is not None and state.tokens >= config.max_tokens:
        return f"budget: {state.tokens} LLM tokens >= {config.max_tokens}"
    if config.max_cost is not None and state.cost >= config.max_cost:
        return f"budget: LLM cost {state.cost:.4f} >= {config.max_cost}"
    elapsed = time.monotonic() - state.started
    if config.max_time_seconds is not None and elapsed >= config.max_time_seconds:
        return f"budget: {elapsed:.0f} s wall time >= {config.max_time_seconds:g} s"
    return None


def _full_key(config: RunConfig, game: Game) -> str:
    return env_key(game.name, config.full_env().model_dump())


def _latest_full_result(
    store: Store, program_id: str, config: RunConfig, game: Game
) -> EvaluationResult | None:
    """The head's full evaluation, or its smoke evaluation when that is all it got."""
    for env, seeds in ((config.full_env(), config.seeds), (config.smoke_env(), config.seeds[:1])):
        found = store.find_evaluation(program_id, env_key(game.name, env.model_dump()), seeds)
        if found is not None:
            return stored_result(store, found)
    return None


def _feedback_for(result: EvaluationResult | None, game: Game, last_failure: str) -> str:
    parts = [compose_feedback(result, game) if result else "This program was not evaluated."]
    if last_failure:
        parts.append(last_failure)
    return "\n\n".join(parts)


def _best_sources(
    store: Store, run_id: str, config: RunConfig, game: Game, limit: int = 3
) -> tuple[ScoredSource, ...]:
    """The best few programs under the run's full env setting, best first."""
    key = _full_key(config, game)
    rows = sorted(
        (row for row in store.history(run_id) if row.status == "ok" and row.evaluation_id),
        key=lambda row: row.mean_return if row.mean_return is not None else float("-inf"),
        reverse=True,
    )
    best: list[ScoredSource] = []
    for row in rows:
        if len(best) == limit:
            break
        # History scores by the run's own (full) setting; a program killed before its full
        # evaluation only has a smoke score, which does not compare.
        if store.get_evaluation(row.evaluation_id or "").env_key == key:
            source = store.get_program(row.program_id).source
            best.append(ScoredSource(source, row.mean_return, row.program_id[:8]))
    return tuple(best)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
