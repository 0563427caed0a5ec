"""Rebuild a sandbox result from what storage kept, so a reused or resumed evaluation reads
exactly like a fresh one (feedback, selection and the prompt cannot tell the difference)."""

from __future__ import annotations

from sandbox.results import EvaluationResult
from sandbox.settings import Limits
from storage import Store
from storage.models import Evaluation


def stored_result(store: Store, evaluation: Evaluation) -> EvaluationResult:
    traces = {trace.episode: trace.data for trace in store.traces(evaluation.id)}
    episodes = [
        {"wall_seconds": 0.0, **episode, "trace": traces.get(index)}
        for index, episode in enumerate(evaluation.episodes)
    ]
    return EvaluationResult.model_validate(
        {
            "game": evaluation.game,
            "env": evaluation.env,
            "limits": evaluation.limits or Limits().model_dump(),
            "backend": evaluation.backend,
            "checked": evaluation.checked,
            "status": evaluation.status,
            "check": evaluation.check_report,
            "episodes": episodes,
            "wall_seconds": evaluation.wall_seconds,
        }
    )
