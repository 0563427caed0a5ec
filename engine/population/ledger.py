"""LLM attempts: recorded once each, the moment they end, and watched for a dead endpoint."""

from __future__ import annotations

import threading

from engine.proposers.base import LlmExchange, Proposal
from storage import Store

UNANSWERED_LIMIT = 3  # proposals in a row whose every LLM attempt failed: the endpoint is dead


class CallLedger:
    """Thread-safe: proposers call `record` from their own threads as each attempt ends (so a
    kill mid-retry loses no served call); the coordinator `settle`s each finished proposal."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.unanswered = 0  # proposals in a row that got no answer at all
        self._recorded: set[str] = set()
        self._lock = threading.Lock()

    def record(self, exchange: LlmExchange, parent_id: str) -> None:
        with self._lock:
            if exchange.id in self._recorded:
                return
            self._recorded.add(exchange.id)
        self.store.record_llm_call(self.run_id, exchange, parent_program_id=parent_id)

    def settle(self, proposal: Proposal, parent_id: str) -> tuple[int, float]:
        """Record what the proposer did not report as it went; the proposal's tokens and cost."""
        tokens, cost = 0, 0.0
        for exchange in proposal.exchanges:
            self.record(exchange, parent_id)
            tokens += (exchange.tokens_in or 0) + (exchange.tokens_out or 0)
            cost += exchange.cost or 0.0
        return tokens, cost

    def link(self, proposal: Proposal, program_id: str) -> None:
        """The answer that became the program: the last attempt that answered."""
        answered = [e for e in proposal.exchanges if e.error is None and e.response]
        if answered:
            self.store.link_llm_call(answered[-1].id, program_id)

    def dead_endpoint(self, proposal: Proposal) -> str | None:
        """Why the run must stop, once UNANSWERED_LIMIT proposals in a row got no answer from
        any attempt (retries included): nothing listening, a wrong URL, a bad key would
        otherwise turn a run into hours of failed calls."""
        dead = proposal.source is None and bool(proposal.exchanges)
        dead = dead and all(e.error is not None and not e.response for e in proposal.exchanges)
        self.unanswered = self.unanswered + 1 if dead else 0
        if self.unanswered < UNANSWERED_LIMIT:
            return None
        last = (proposal.exchanges[-1].error or "")[:200]
        return (
            f"failed: the LLM endpoint answered none of the last {self.unanswered} proposals "
            f"(last error: {last})"
        )
