"""The read-only questions (best program, lineage, history, diff, usage): each opens a read
session, checks the id it was given, and hands the session to `storage.queries`/`usage`."""

from __future__ import annotations

from storage import queries
from storage.store_base import StoreBase
from storage.usage import RunUsage, run_usage


class QuestionsMixin(StoreBase):
    """The `Store` calls that answer questions about a run's stored history."""

    def run_usage(self, run_id: str) -> RunUsage:
        """Tokens, cost, calls and env steps of the run, summed from its `llm_call` and
        `evaluation` rows (never from an event that may be stale): what budgets resume from."""
        with self._read() as session:
            self._run(session, run_id)
            return run_usage(session, run_id)

    def best_program(self, run_id: str, env_key: str | None = None) -> queries.ScoredProgram | None:
        """The run's best program (rule in `storage.queries`), or None if nothing scored."""
        with self._read() as session:
            self._run(session, run_id)
            return queries.best_program(session, run_id, env_key)

    def lineage(self, program_id: str) -> queries.Lineage:
        with self._read() as session:
            return queries.lineage(session, program_id)

    def ancestors(self, program_id: str) -> list[queries.LineageNode]:
        with self._read() as session:
            self._program(session, program_id)
            return queries.ancestors(session, program_id)

    def descendants(self, program_id: str) -> list[queries.LineageNode]:
        with self._read() as session:
            self._program(session, program_id)
            return queries.descendants(session, program_id)

    def history(self, run_id: str) -> list[queries.HistoryRow]:
        with self._read() as session:
            self._run(session, run_id)
            return queries.history(session, run_id)

    def history_with_events(self, run_id: str) -> list[queries.HistoryRow | queries.HistoryEvent]:
        """`history` plus iterations that made no program, and reverts/rollbacks, in order."""
        with self._read() as session:
            self._run(session, run_id)
            return queries.history_with_events(session, run_id)

    def diff(self, a_id: str, b_id: str) -> str:
        with self._read() as session:
            return queries.diff(session, a_id, b_id)
