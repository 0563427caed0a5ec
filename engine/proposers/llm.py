"""Propose a program by asking an OpenAI-compatible chat model to rewrite the parent.

Retries are ours, not the client's (`max_retries=0` on `openai.OpenAI`): every HTTP attempt,
failed ones included, becomes an `LlmExchange`, handed to `ProposalContext.on_exchange` the
moment it ends (before any backoff), so the audit trail shows each 429 and timeout and what it
cost even when the process is killed mid-retry. Transient failures (timeouts, connection
errors, 408/409/429, 5xx, unreadable bodies) are retried with exponential backoff and full
jitter, honouring `Retry-After`; anything else (a bad key, an unknown model, a malformed
request) fails fast, since retrying cannot fix it (`engine.proposers.llm_wire.failure_of`).

One proposer may serve several threads at once. They share its rate-limit gate
(`engine.proposers.gate`): a 429 pauses every thread's next attempt, not just one. `cancel()`,
from any thread (a signal handler's), aborts every request in flight at once
(`engine.proposers.transport`) and makes every `propose` return promptly with
`Proposal(cancelled=True)`.

A proposer never raises for a failed call: it returns `Proposal(source=None, note=...)` with the
exchanges, and the loop records that like any other outcome. Only an exception from
`on_exchange` (the loop's own recording failed) propagates.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

from engine.extract import answer_text, extract_program
from engine.prompts import build_prompt
from engine.proposers.base import (
    LlmExchange,
    Proposal,
    ProposalContext,
    ProposalOrigin,
    ProposerName,
)
from engine.proposers.cancel import CancelFlag
from engine.proposers.gate import RateGate
from engine.proposers.llm_wire import (
    LOCAL_HOSTS,
    LOCAL_PLACEHOLDER_KEY,
    RETRY_STATUSES,
    Failure,
    LlmConfigError,
    failure_of,
    raw_body,
    render_messages,
    resolve_api_key,
    retry_after,
    summary,
    token_count,
)
from engine.proposers.transport import CancellableTransport

__all__ = [  # with what tests and callers import from here, now in llm_wire
    "CANCELLED_NOTE",
    "LOCAL_HOSTS",
    "LOCAL_PLACEHOLDER_KEY",
    "NO_CODE_NOTE",
    "RETRY_STATUSES",
    "LlmConfigError",
    "LlmProposer",
    "Prices",
    "render_messages",
    "resolve_api_key",
    "retry_after",
]

ORIGIN: ProposalOrigin = "llm"
NO_CODE_NOTE = "the answer contained no Python module defining act(obs)"
CANCELLED_NOTE = "the LLM request was cancelled (the run is stopping)"

Prices = Mapping[str, tuple[float, float]]  # model -> USD per 1M (input, output) tokens


@dataclass(frozen=True)
class _Attempt:
    """What one HTTP attempt gave: an exchange to store, and whether to try again."""

    exchange: LlmExchange
    text: str | None = None  # the answer, when the call succeeded
    finish_reason: str | None = None
    retry: bool = False
    retry_after_seconds: float | None = None
    rate_limited: bool = False  # a 429: closes the shared gate
    cancelled: bool = False  # aborted by `cancel()`


def _check_settings(
    max_retries: int,
    timeout_seconds: float,
    connect_timeout_seconds: float,
    backoff_base_seconds: float,
    backoff_cap_seconds: float,
) -> None:
    """Refuse settings the retry loop cannot honour, naming the setting."""
    if max_retries < 0:
        raise LlmConfigError(f"max_retries must be >= 0, got {max_retries}")
    for name, value in (
        ("timeout_seconds", timeout_seconds),
        ("connect_timeout_seconds", connect_timeout_seconds),
    ):
        if not value > 0:
            raise LlmConfigError(f"{name} must be positive, got {value}")
    if not 0 <= backoff_base_seconds <= backoff_cap_seconds:
        raise LlmConfigError(
            "backoff must satisfy 0 <= base <= cap, got "
            f"base {backoff_base_seconds}, cap {backoff_cap_seconds}"
        )


class LlmProposer:
    """Asks a chat model for an improved program; see the module docstring for retries."""

    name: ProposerName = "llm"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_seconds: float = 120.0,
        connect_timeout_seconds: float = 10.0,
        max_retries: int = 4,
        temperature: float | None = None,
        max_tokens: int | None = None,
        prices: Prices | None = None,
        backoff_base_seconds: float = 1.0,
        backoff_cap_seconds: float = 60.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """`timeout_seconds` bounds each wait for the server (connect: at most
        `connect_timeout_seconds`). `sleep` and `clock` replace the backoff wait and the
        clock it is measured on, in tests (by default: a wait that `cancel()` cuts short, on
        the monotonic clock)."""
        _check_settings(
            max_retries,
            timeout_seconds,
            connect_timeout_seconds,
            backoff_base_seconds,
            backoff_cap_seconds,
        )
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.timeout_seconds = timeout_seconds
        self.connect_timeout_seconds = min(connect_timeout_seconds, timeout_seconds)
        self.max_retries = max_retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prices = dict(prices or {})
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self._cancelled = CancelFlag()
        self._sleep = sleep or self._cancellable_sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._gate = RateGate(
            base_seconds=backoff_base_seconds,
            cap_seconds=backoff_cap_seconds,
            clock=clock,
            rng=random.Random(self._rng.random()),  # its own stream: no lock shared with ours
        )
        self._transport = CancellableTransport()
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=resolve_api_key(api_key, self.base_url),
            timeout=httpx2.Timeout(timeout_seconds, connect=self.connect_timeout_seconds),
            max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=self._transport),
        )

    # -- shutdown ----------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Abort every request in flight now and make every `propose` return promptly.

        Safe from any thread and from a signal handler (it takes no lock the interrupted code
        could hold); idempotent; permanent (a cancelled proposer sends nothing more: make a new
        one to continue).
        """
        self._cancelled.set()
        self._transport.abort_all()

    def close(self) -> None:
        """Release the HTTP client (after `cancel()`, or when the run is done)."""
        self._client.close()

    def _cancellable_sleep(self, seconds: float) -> None:
        self._cancelled.wait(seconds)

    # -- proposing ---------------------------------------------------------------------------

    def propose(self, context: ProposalContext) -> Proposal:
        messages = build_prompt(context)
        prompt = render_messages(messages)
        exchanges: list[LlmExchange] = []
        delay_seconds = 0.0
        for attempt_index in range(self.max_retries + 1):
            self._wait(delay_seconds)
            if self.cancelled:
                return _cancelled(exchanges)
            attempt = self._attempt(messages, prompt)
            exchanges.append(attempt.exchange)
            if attempt.rate_limited:  # closes the gate for every thread, this one included
                delay_seconds = self._gate.rate_limited(attempt.retry_after_seconds)
            elif attempt.text is not None:
                self._gate.answered()
            if context.on_exchange is not None:
                context.on_exchange(attempt.exchange)  # recorded before any backoff
            if attempt.text is not None:
                return self._proposal(attempt, exchanges)
            if attempt.cancelled or self.cancelled:
                return _cancelled(exchanges)
            if not attempt.retry:
                return Proposal(
                    source=None,
                    origin=ORIGIN,
                    note=f"the LLM request failed and was not retried: {attempt.exchange.error}",
                    exchanges=tuple(exchanges),
                )
            if not attempt.rate_limited:
                delay_seconds = self.backoff_seconds(attempt_index, attempt.retry_after_seconds)
        attempts = len(exchanges)
        return Proposal(
            source=None,
            origin=ORIGIN,
            note=(
                f"the LLM request failed {attempts} time{'s' if attempts != 1 else ''} "
                f"(retries exhausted); last error: {exchanges[-1].error}"
            ),
            exchanges=tuple(exchanges),
        )

    def _wait(self, delay_seconds: float) -> None:
        """Wait out this attempt's own backoff and the shared gate, whichever ends later.

        Another thread's 429 may push the gate further while we wait: then wait again, until
        the gate stops moving (each pass only ever waits for a later moment, so this ends).
        """
        target = max(self._clock() + delay_seconds, self._gate.open_at)
        while not self.cancelled:
            remaining = target - self._clock()
            if remaining > 0:
                self._sleep(remaining)
            reopened = self._gate.open_at
            if reopened <= target:
                return
            target = reopened

    def backoff_seconds(self, attempt_index: int, retry_after_seconds: float | None) -> float:
        """Full jitter (uniform in [0, min(cap, base * 2**n)]); the server's Retry-After, capped,
        when it sent one."""
        if retry_after_seconds is not None:
            return min(max(retry_after_seconds, 0.0), self.backoff_cap_seconds)
        ceiling = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2**attempt_index)
        with self._rng_lock:
            return self._rng.uniform(0.0, ceiling)

    def _attempt(self, messages: list[dict[str, str]], prompt: str) -> _Attempt:
        options: dict[str, Any] = {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        started = time.monotonic()
        try:
            completion = self._client.chat.completions.create(
                model=self.model,
                # plain role/content dicts, which the SDK types as per-role TypedDicts
                messages=messages,  # type: ignore[arg-type]
                **options,
            )
        except Exception as error:  # every way a call fails is recorded, none raised
            failure = failure_of(
                error,
                cancelled=self.cancelled,
                waited_seconds=time.monotonic() - started,
                timeout_seconds=self.timeout_seconds,
            )
            return self._failure(prompt, started, failure)
        return self._read(completion, prompt, time.monotonic() - started)

    def _read(self, completion: Any, prompt: str, latency: float) -> _Attempt:
        """The answer from a 200 response. A body without choices (a proxy's error page, a
        malformed server) is recorded as a failed, retryable attempt."""
        usage = getattr(completion, "usage", None)
        tokens_in = token_count(getattr(usage, "prompt_tokens", None))
        tokens_out = token_count(getattr(usage, "completion_tokens", None))
        choices = getattr(completion, "choices", None)
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = getattr(choice, "message", None)
        # Servers send a string, a list of parts, a number or null: read them all as text.
        text = answer_text(getattr(message, "content", None))
        finish_reason = getattr(choice, "finish_reason", None)
        exchange = LlmExchange(
            prompt=prompt,
            model=self.model,
            response=text if choice is not None else raw_body(completion),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_seconds=round(latency, 4),
            cost=self.cost(tokens_in, tokens_out),
            error=None if choice is not None else "the response held no chat completion choice",
        )
        if choice is None:
            return _Attempt(exchange=exchange, retry=True)
        return _Attempt(
            exchange=exchange,
            text=text,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        )

    def _failure(self, prompt: str, started: float, failure: Failure) -> _Attempt:
        exchange = LlmExchange(
            prompt=prompt,
            model=self.model,
            latency_seconds=round(time.monotonic() - started, 4),
            error=failure.error,
        )
        return _Attempt(
            exchange=exchange,
            retry=failure.retry,
            retry_after_seconds=failure.retry_after_seconds,
            rate_limited=failure.rate_limited,
            cancelled=failure.cancelled,
        )

    def _proposal(self, attempt: _Attempt, exchanges: list[LlmExchange]) -> Proposal:
        source = extract_program(attempt.text or "")
        if source is None:
            note = NO_CODE_NOTE
            if attempt.finish_reason == "length":
                note += " (the answer was cut off at the token limit)"
            elif not attempt.text:
                note += " (the answer was empty)"
            return Proposal(source=None, origin=ORIGIN, note=note, exchanges=tuple(exchanges))
        return Proposal(
            source=source,
            origin=ORIGIN,
            note=summary(attempt.text or ""),
            exchanges=tuple(exchanges),
        )

    def cost(self, tokens_in: int | None, tokens_out: int | None) -> float | None:
        """USD for one call, or None when the model's price or the token counts are unknown."""
        price = self.prices.get(self.model)
        if price is None or tokens_in is None or tokens_out is None:
            return None
        return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000


def _cancelled(exchanges: list[LlmExchange]) -> Proposal:
    return Proposal(
        source=None,
        origin=ORIGIN,
        note=CANCELLED_NOTE,
        exchanges=tuple(exchanges),
        cancelled=True,
    )
