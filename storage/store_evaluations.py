"""Evaluations and their traces: record one sandbox result in one transaction, find one to
reuse, and read them back (traces decompressed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from storage import queries
from storage.encode import decode_trace, encode_trace, evaluation_row, seeds_key
from storage.models import Evaluation, Trace
from storage.store_base import StoreBase


@dataclass(frozen=True)
class StoredTrace:
    """One episode's trace, decompressed."""

    evaluation_id: str
    episode: int
    seed: int
    steps: int
    raw_bytes: int
    stored_bytes: int
    truncated: bool  # cut down by storage to fit the cap
    data: dict[str, Any]


class EvaluationsMixin(StoreBase):
    """The `Store` calls about evaluations and traces."""

    def record_evaluation(
        self,
        program_id: str,
        result: Mapping[str, Any],
        traces: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        seeds: Sequence[int] | None = None,
        holdout: bool = False,
    ) -> Evaluation:
        """Record one sandbox evaluation result and its traces in one transaction.

        `result` is the sandbox's evaluation JSON as a dict. Traces come from `traces` (one per
        episode, None for none) or else from each episode's `"trace"`; each is compressed and
        capped (see `storage.encode.encode_trace`). `seeds` are the requested seeds, needed
        only for a rejected program, which has no episodes to read them from. A `holdout`
        evaluation (held-out seeds) is keyed by `storage.encode.holdout_env_key`.
        """
        row = evaluation_row(result, traces, seeds, holdout=holdout)
        encoded = [
            (episode, seed, steps, encode_trace(trace, self.trace_cap_bytes))
            for episode, seed, steps, trace in row.traces
        ]
        with self._write() as session:
            program = self._program(session, program_id)
            evaluation = Evaluation(program_id=program.id, run_id=program.run_id, **row.values)
            session.add(evaluation)
            session.flush()
            for episode, seed, steps, trace in encoded:
                session.add(
                    Trace(
                        evaluation_id=evaluation.id,
                        episode=episode,
                        seed=seed,
                        steps=steps,
                        data=trace.data,
                        raw_bytes=trace.raw_bytes,
                        stored_bytes=trace.stored_bytes,
                        truncated=trace.truncated,
                    )
                )
        return evaluation

    def find_evaluation(
        self, program_id: str, env_key: str, seeds: Sequence[int]
    ) -> Evaluation | None:
        """An earlier evaluation to reuse instead of playing the program again, if any.

        Exact matches on (program, env key, seeds) first, newest first; `crashed` ones are
        skipped (the sandbox failed, not the program: worth another try). A `rejected`
        evaluation matches whatever the env and seeds, since the static check depends on
        neither. `env_key` comes from `storage.encode.env_key(game, env)`.
        """
        key = seeds_key(seeds)
        with self._read() as session:
            exact = session.scalars(
                select(Evaluation)
                .where(
                    Evaluation.program_id == program_id,
                    Evaluation.env_key == env_key,
                    Evaluation.seeds_key == key,
                    Evaluation.status != "crashed",
                )
                .order_by(Evaluation.created_at.desc(), Evaluation.id)
                .limit(1)
            ).first()
            if exact is not None:
                return exact
            return session.scalars(
                select(Evaluation)
                .where(Evaluation.program_id == program_id, Evaluation.status == "rejected")
                .order_by(Evaluation.created_at.desc(), Evaluation.id)
                .limit(1)
            ).first()

    def get_evaluation(self, evaluation_id: str) -> Evaluation:
        with self._read() as session:
            return self._get(session, Evaluation, evaluation_id, "evaluation")

    def resolve_evaluation(self, prefix: str) -> Evaluation:
        """The evaluation whose id starts with `prefix` (NotFoundError / AmbiguousIdError)."""
        with self._read() as session:
            full = queries.resolve_id(session, Evaluation, prefix)
            evaluation = session.get(Evaluation, full)
            assert evaluation is not None
            return evaluation

    def evaluations(self, program_id: str) -> list[Evaluation]:
        """The program's evaluations, oldest first."""
        with self._read() as session:
            return list(
                session.scalars(
                    select(Evaluation)
                    .where(Evaluation.program_id == program_id)
                    .order_by(Evaluation.created_at, Evaluation.id)
                )
            )

    def run_evaluations(self, run_id: str) -> list[Evaluation]:
        """Every evaluation of the run's programs, oldest first (smoke, full and any other)."""
        with self._read() as session:
            self._run(session, run_id)
            return list(
                session.scalars(
                    select(Evaluation)
                    .where(Evaluation.run_id == run_id)
                    .order_by(Evaluation.created_at, Evaluation.id)
                )
            )

    def trace_sizes(self, evaluation_id: str) -> list[tuple[int, int, bool]]:
        """(episode, stored bytes, truncated by storage) of each trace, without decoding."""
        with self._read() as session:
            return [
                (row.episode, row.stored_bytes, row.truncated)
                for row in session.execute(
                    select(Trace.episode, Trace.stored_bytes, Trace.truncated)
                    .where(Trace.evaluation_id == evaluation_id)
                    .order_by(Trace.episode)
                )
            ]

    def traces(self, evaluation_id: str) -> list[StoredTrace]:
        """The evaluation's traces, decompressed, in episode order."""
        with self._read() as session:
            rows = session.scalars(
                select(Trace).where(Trace.evaluation_id == evaluation_id).order_by(Trace.episode)
            ).all()
        return [
            StoredTrace(
                evaluation_id=row.evaluation_id,
                episode=row.episode,
                seed=row.seed,
                steps=row.steps,
                raw_bytes=row.raw_bytes,
                stored_bytes=row.stored_bytes,
                truncated=row.truncated,
                data=decode_trace(row.data),
            )
            for row in rows
        ]
