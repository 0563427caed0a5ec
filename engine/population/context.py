"""What a proposal is shown: its island's head with feedback on it, and the run's best few."""

from __future__ import annotations

from collections.abc import Callable

from engine.config import RunConfig
from engine.feedback import compose_feedback
from engine.proposers.base import LlmExchange, ProposalContext, ScoredSource
from engine.records import stored_result
from engine.selection import IslandState
from sandbox.games import Game
from sandbox.results import EvaluationResult
from storage import Store, env_key


def proposal_context(
    store: Store,
    config: RunConfig,
    game: Game,
    island: IslandState,
    iteration: int,
    on_call: Callable[[LlmExchange, str], None],
) -> ProposalContext:
    head = store.get_program(island.head_id)
    result = latest_result(store, head.id, config, game)
    feedback = [compose_feedback(result, game) if result else "This program was not evaluated."]
    if island.last_failure:
        feedback.append(island.last_failure)
    return ProposalContext(
        game=game,
        parent=ScoredSource(head.source, result.mean_return if result else None, head.id[:8]),
        feedback="\n\n".join(feedback),
        best=best_sources(store, head.run_id, config, game),
        iteration=iteration,
        on_exchange=lambda exchange: on_call(exchange, head.id),
    )


def latest_result(
    store: Store, program_id: str, config: RunConfig, game: Game
) -> EvaluationResult | None:
    """The program's training evaluation, or its smoke evaluation when that is all it got."""
    for env, seeds in ((config.full_env(), config.seeds), (config.smoke_env(), config.seeds[:1])):
        found = store.find_evaluation(program_id, env_key(game.name, env.model_dump()), seeds)
        if found is not None:
            return stored_result(store, found)
    return None


def best_sources(
    store: Store, run_id: str, config: RunConfig, game: Game, limit: int = 3
) -> tuple[ScoredSource, ...]:
    """The best few programs under the run's training setting, best first."""
    key = env_key(game.name, config.full_env().model_dump())
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
