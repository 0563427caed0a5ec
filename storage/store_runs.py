"""Runs: create one, move its head, change its status, revert; each change logs an event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storage import queries
from storage.errors import InvalidInputError
from storage.models import RUN_STATUSES, Event, EventKind, Run, RunStatus, short_id, utcnow
from storage.store_base import StoreBase

_STATUS_EVENTS: dict[RunStatus, EventKind] = {
    "running": "run_resumed",
    "stopped": "run_stopped",
    "finished": "run_finished",
    "failed": "run_failed",
}


class RunsMixin(StoreBase):
    """The `Store` calls about runs."""

    def get_run(self, run_id: str) -> Run:
        with self._read() as session:
            return self._run(session, run_id)

    def resolve_run(self, prefix: str) -> Run:
        """The run whose id starts with `prefix` (NotFoundError / AmbiguousIdError)."""
        with self._read() as session:
            return self._run(session, queries.resolve_id(session, Run, prefix))

    def runs(self) -> list[queries.RunSummary]:
        with self._read() as session:
            return queries.runs(session)

    def create_run(
        self, game: str, env: Mapping[str, Any], config: Mapping[str, Any] | None = None
    ) -> Run:
        """A new run, status `running`, no head yet; logs a `run_started` event."""
        if not game:
            raise InvalidInputError("a run needs a game")
        with self._write() as session:
            run = Run(game=game, env=dict(env), config=dict(config or {}), status="running")
            session.add(run)
            session.flush()
            session.add(Event(run_id=run.id, kind="run_started", message=f"{game} run started"))
        return run

    def set_head(self, run_id: str, program_id: str) -> Run:
        """Make `program_id` the program the run's next iteration builds on."""
        with self._write() as session:
            run, program = self._run(session, run_id), self._program(session, program_id)
            self._check_same_run(program, run)
            run.head_program_id = program.id
            run.updated_at = utcnow()
        return run

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        message: str = "",
        *,
        config_changed: Mapping[str, tuple[Any, Any]] | None = None,
    ) -> Run:
        """Change the run's status, logging run_resumed/run_stopped/run_finished/run_failed.

        `config_changed` (a resume's raised budgets or new Ray address, setting -> (before,
        after)) is kept in the event: the run row's config stays as created (append-only), and
        the settings in force are that config with every resume's changes applied in order."""
        if status not in RUN_STATUSES:
            raise InvalidInputError(
                f"run status {status!r} is not one of: {', '.join(RUN_STATUSES)}"
            )
        data: dict[str, Any] = {"to": status}
        said = ""
        if config_changed:
            data["config_changed"] = {key: list(pair) for key, pair in config_changed.items()}
            changes = ", ".join(
                f"{key} {was} -> {now}" for key, (was, now) in config_changed.items()
            )
            said = f" ({changes})"
        with self._write() as session:
            run = self._run(session, run_id)
            previous = run.status
            run.status = status
            run.updated_at = utcnow()
            session.add(
                Event(
                    run_id=run.id,
                    kind=_STATUS_EVENTS[status],
                    message=f"{message or f'status {previous} -> {status}'}{said}"[:500],
                    data={"from": previous, **data},
                )
            )
        return run

    def revert(self, run_id: str, program_id: str, message: str = "") -> Run:
        """Point the run's head back at an earlier program; nothing is deleted.

        The next iteration builds on that program; every later program, evaluation and LLM
        call stays, and a `revert` event records the head before and after.
        """
        with self._write() as session:
            run, program = self._run(session, run_id), self._program(session, program_id)
            self._check_same_run(program, run)
            previous = run.head_program_id
            run.head_program_id = program.id
            run.updated_at = utcnow()
            session.add(
                Event(
                    run_id=run.id,
                    kind="revert",
                    message=message or f"head {short_id(previous)} -> {short_id(program.id)}",
                    data={"from": previous, "to": program.id},
                )
            )
        return run
