"""A run's score over time, as plain numbers: what `evocade plot` and the web view draw.

One point per program, in creation order (the seed program is iteration 0, each proposal the
next one). A program's *training* score is its evaluation under the run's own env setting on
the run's training seeds; a *held-out* score is its evaluation on the held-out seeds, stored
under the held-out key (`storage.encode.holdout_env_key`; runs from before the population
engine kept them under the run's own key, on seeds disjoint from the training ones). Short
smoke evaluations score nothing here, but their steps count: the env-steps axis is every step
the run played, in the order it played them, up to that program's evaluation.

Pure: it reads rows already fetched (`run_series` takes them), so it is tested without a
database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storage import Store
from storage.encode import env_key, holdout_env_key
from storage.models import Evaluation, short_id
from storage.queries import HistoryRow


@dataclass(frozen=True)
class ScorePoint:
    iteration: int
    program_id: str
    env_steps: int  # steps the run had played when this program's score was known
    score: float | None  # training mean return of an `ok` evaluation; None otherwise
    status: str | None  # status of the training evaluation (None: never fully evaluated)
    best_so_far: float | None
    heldout: float | None = None
    heldout_best_so_far: float | None = None


@dataclass(frozen=True)
class RunSeries:
    run_id: str
    game: str
    points: list[ScorePoint]

    @property
    def label(self) -> str:
        return f"{short_id(self.run_id)} {self.game}"

    @property
    def has_heldout(self) -> bool:
        return any(point.heldout is not None for point in self.points)

    @property
    def best(self) -> float | None:
        return self.points[-1].best_so_far if self.points else None

    @property
    def heldout_best(self) -> float | None:
        return self.points[-1].heldout_best_so_far if self.points else None


def training_seeds(config: Mapping[str, Any], evaluations: Sequence[Evaluation], key: str) -> str:
    """The seeds key of the run's training evaluations.

    From the run's config (`first_seed`, `episodes`) when it has them, else the seed list
    used most often under the run's env setting.
    """
    if isinstance(config.get("episodes"), int):
        first = int(config.get("first_seed", 0) or 0)
        return ",".join(str(seed) for seed in range(first, first + int(config["episodes"])))
    counts = Counter(e.seeds_key for e in evaluations if e.env_key == key)
    return counts.most_common(1)[0][0] if counts else ""


def run_series(
    run_id: str,
    game: str,
    env: Mapping[str, Any],
    config: Mapping[str, Any],
    history: Sequence[HistoryRow],
    evaluations: Sequence[Evaluation],
) -> RunSeries:
    """The run's points; `evaluations` are all of the run's, oldest first."""
    key, holdout_key = env_key(game, env), holdout_env_key(game, env)
    train_key = training_seeds(config, evaluations, key)
    train_seeds = set(train_key.split(",")) if train_key else set()
    steps_after: dict[str, int] = {}
    training: dict[str, Evaluation] = {}
    heldout: dict[str, Evaluation] = {}
    played = 0
    for evaluation in evaluations:
        played += int(evaluation.total_steps or 0)
        steps_after[evaluation.id] = played
        if evaluation.env_key == holdout_key:  # the population engine's held-out seeds
            heldout[evaluation.program_id] = evaluation
            continue
        if evaluation.env_key != key:
            continue
        if evaluation.seeds_key == train_key:
            training[evaluation.program_id] = evaluation  # the latest one counts
        elif train_seeds.isdisjoint(evaluation.seeds_key.split(",")):
            heldout[evaluation.program_id] = evaluation

    points: list[ScorePoint] = []
    best: float | None = None
    heldout_best: float | None = None
    last_steps = 0
    for iteration, row in enumerate(history):
        found = training.get(row.program_id)
        score = None
        if found is not None and found.status == "ok" and found.mean_return is not None:
            score = float(found.mean_return)
            best = score if best is None else max(best, score)
        held = heldout.get(row.program_id)
        held_score = None
        if held is not None and held.status == "ok" and held.mean_return is not None:
            held_score = float(held.mean_return)
            heldout_best = held_score if heldout_best is None else max(heldout_best, held_score)
        known = [steps_after[e.id] for e in (found, held) if e is not None]
        last_steps = max([last_steps, *known])
        points.append(
            ScorePoint(
                iteration,
                row.program_id,
                last_steps,
                score,
                found.status if found is not None else None,
                best,
                held_score,
                heldout_best,
            )
        )
    return RunSeries(run_id, game, points)


def load_series(store: Store, run_id: str) -> RunSeries:
    """`run_series` for a run in `store`."""
    run = store.get_run(run_id)
    return run_series(
        run.id,
        run.game,
        run.env,
        run.config or {},
        store.history(run.id),
        store.run_evaluations(run.id),
    )
