"""LLM calls: record each attempt once (idempotent by the client-made call id), store each
distinct prompt once, link a call to the program its answer became, and read them back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.encode import cap_text, storable_text
from storage.errors import AppendOnlyError, InvalidInputError, NotFoundError
from storage.models import LlmCall, LlmPrompt, Run, new_id, short_id, utcnow
from storage.store_base import StoreBase, source_sha256

_CALL_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class LlmExchange:
    """One request to a language model, failed ones included: what an `llm_call` row records.

    The engine's proposers make them and the store records them as they are, so the fields are
    spelled once, here. `id` is made by the client, not by the database, so the row written
    the moment the attempt ends can later be linked to the program its answer produced
    (`Store.link_llm_call(id, program_id)`).
    """

    prompt: str
    model: str
    response: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_seconds: float | None = None
    cost: float | None = None
    error: str | None = None
    id: str = field(default_factory=new_id)


class LlmMixin(StoreBase):
    """The `Store` calls about LLM calls."""

    def record_llm_call(
        self,
        run_id: str,
        exchange: LlmExchange,
        *,
        parent_program_id: str | None = None,
        produced_program_id: str | None = None,
    ) -> LlmCall:
        """Record one LLM attempt, failed ones included (`error` set, `response` maybe None).

        Record it as soon as the attempt ends, under its client-made `exchange.id`; once its
        answer has become a program, `link_llm_call` fills in `produced_program_id`.
        Recording the same id again returns the stored row unchanged, so a caller that is
        unsure whether a write landed can simply repeat it. The prompt is stored once per
        distinct text (`llm_prompt`); the response is cut to the store's `response_cap_bytes`,
        and the cut recorded in `response_truncated_bytes`.
        """
        call_id = exchange.id
        _check_call_id(call_id)
        existing = self._existing_call(run_id, call_id)
        if existing is not None:
            return existing
        kept, cut = self._capped_response(exchange.response)

        def write() -> LlmCall:
            with self._write() as session:
                run = self._run(session, run_id)
                self._check_call_programs(session, run, parent_program_id, produced_program_id)
                call = LlmCall(
                    id=call_id,
                    run_id=run.id,
                    prompt_row=self._stored_prompt(session, storable_text(exchange.prompt)),
                    response=kept,
                    response_truncated_bytes=cut,
                    model=storable_text(exchange.model),
                    tokens_in=exchange.tokens_in,
                    tokens_out=exchange.tokens_out,
                    latency_seconds=exchange.latency_seconds,
                    cost=exchange.cost,
                    error=storable_text(exchange.error) if exchange.error is not None else None,
                    parent_program_id=parent_program_id,
                    produced_program_id=produced_program_id,
                )
                session.add(call)
            return call

        return self._written_or_raced(write, lambda: self._existing_call(run_id, call_id))

    def _capped_response(self, response: str | None) -> tuple[str | None, int]:
        """The response as stored (cut to `response_cap_bytes`) and how many bytes were cut."""
        if response is None:
            return None, 0
        return cap_text(storable_text(response), self.response_cap_bytes)

    def _check_call_programs(self, session: Session, run: Run, *program_ids: str | None) -> None:
        """Each program the call names (None skipped) exists and belongs to `run`."""
        for pid in program_ids:
            if pid is not None:
                self._check_same_run(self._program(session, pid), run)

    def _existing_call(self, run_id: str, call_id: str) -> LlmCall | None:
        with self._read() as session:
            existing = session.get(LlmCall, call_id)
        if existing is not None and existing.run_id != run_id:
            raise InvalidInputError(
                f"LLM call {short_id(call_id)} belongs to run {short_id(existing.run_id)}, "
                f"not to run {short_id(run_id)}"
            )
        return existing

    @staticmethod
    def _stored_prompt(session: Session, text: str) -> LlmPrompt:
        """The `llm_prompt` row of this text, inserted unless another call stored it already
        (INSERT ... ON CONFLICT DO NOTHING: concurrent writers of one prompt both succeed)."""
        digest = source_sha256(text)
        dialect = session.get_bind().dialect.name
        values = {"sha256": digest, "text": text, "created_at": utcnow()}
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
            session.execute(
                insert(LlmPrompt).values(**values).on_conflict_do_nothing(index_elements=["sha256"])
            )
        elif session.get(LlmPrompt, digest) is None:
            session.add(LlmPrompt(**values))
            session.flush()
        stored = session.get(LlmPrompt, digest)
        assert stored is not None
        return stored

    def link_llm_call(self, call_id: str, program_id: str) -> LlmCall:
        """Record that this call's answer became `program_id` (set once; repeating the same link
        is a no-op, a different one is refused)."""
        with self._write() as session:
            call = session.scalars(
                select(LlmCall).where(LlmCall.id == call_id).with_for_update()
            ).first()
            if call is None:
                raise NotFoundError(f"no LLM call matches {call_id!r}")
            program = self._program(session, program_id)
            if program.run_id != call.run_id:
                raise InvalidInputError(
                    f"program {short_id(program.id)} belongs to run {short_id(program.run_id)}, "
                    f"not to the call's run {short_id(call.run_id)}"
                )
            if call.produced_program_id == program.id:
                return call
            if call.produced_program_id is not None:
                raise AppendOnlyError(
                    f"LLM call {short_id(call.id)} already produced program "
                    f"{short_id(call.produced_program_id)}; refusing to relink it to "
                    f"{short_id(program.id)}"
                )
            call.produced_program_id = program.id
        return call

    def get_llm_call(self, call_id: str) -> LlmCall:
        with self._read() as session:
            return self._get(session, LlmCall, call_id, "LLM call")

    def llm_calls(self, run_id: str) -> list[LlmCall]:
        with self._read() as session:
            return list(
                session.scalars(
                    select(LlmCall)
                    .where(LlmCall.run_id == run_id)
                    .order_by(LlmCall.created_at, LlmCall.id)
                )
            )

    def program_llm_calls(self, program_id: str) -> tuple[list[LlmCall], list[LlmCall]]:
        """(calls that produced the program, calls whose prompt built on it), oldest first.

        A prompt that built on a program carries the feedback on that program's evaluation:
        that is where the feedback sent to the proposer is stored.
        """
        with self._read() as session:
            self._program(session, program_id)
            order = (LlmCall.created_at, LlmCall.id)
            produced = session.scalars(
                select(LlmCall).where(LlmCall.produced_program_id == program_id).order_by(*order)
            ).all()
            built_on = session.scalars(
                select(LlmCall).where(LlmCall.parent_program_id == program_id).order_by(*order)
            ).all()
            return list(produced), list(built_on)


def _check_call_id(call_id: str) -> None:
    if not _CALL_ID.fullmatch(call_id):
        raise InvalidInputError(f"an LLM call id must be 32 lowercase hex digits: {call_id!r}")
