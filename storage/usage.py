"""What a run has consumed, counted from the stored rows themselves.

Budgets (`--max-tokens`, `--max-cost`, `--max-env-steps`) must hold across kills and resumes.
A counter carried in an event is only as fresh as the last event: the calls of an iteration
killed before its event was written were paid for but not counted, so a resumed run could
overrun its budget. Every LLM attempt and every played evaluation is its own row, written as
it ends, so summing the rows is exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Evaluation, LlmCall


@dataclass(frozen=True)
class RunUsage:
    calls: int  # LLM attempts recorded, failed ones included
    failed_calls: int  # of those, the ones with an error
    tokens_in: int
    tokens_out: int
    cost: float  # sum of the priced calls (in the price table's currency)
    unpriced_calls: int  # calls that returned tokens but have no cost (model not priced)
    evaluations: int  # evaluations played and recorded (reused ones are not played again)
    env_steps: int  # emulator steps over those evaluations

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


def run_usage(session: Session, run_id: str) -> RunUsage:
    calls, failed, tokens_in, tokens_out, cost, unpriced = session.execute(
        select(
            func.count(),
            func.count(LlmCall.error),
            func.coalesce(func.sum(LlmCall.tokens_in), 0),
            func.coalesce(func.sum(LlmCall.tokens_out), 0),
            func.coalesce(func.sum(LlmCall.cost), 0.0),
            func.count(LlmCall.tokens_in) - func.count(LlmCall.cost),
        ).where(LlmCall.run_id == run_id)
    ).one()
    evaluations, env_steps = session.execute(
        select(func.count(), func.coalesce(func.sum(Evaluation.total_steps), 0)).where(
            Evaluation.run_id == run_id
        )
    ).one()
    return RunUsage(
        calls=int(calls),
        failed_calls=int(failed),
        tokens_in=int(tokens_in or 0),
        tokens_out=int(tokens_out or 0),
        cost=float(cost or 0.0),
        unpriced_calls=max(int(unpriced), 0),
        evaluations=int(evaluations),
        env_steps=int(env_steps or 0),
    )
