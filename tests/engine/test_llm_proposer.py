"""LlmProposer over real HTTP (the real `openai` client) against the scripted server."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.prompts import build_prompt
from engine.proposers.base import LlmExchange, ProposalContext, ScoredSource
from engine.proposers.gate import RateGate
from engine.proposers.llm import (
    CANCELLED_NOTE,
    LOCAL_PLACEHOLDER_KEY,
    NO_CODE_NOTE,
    LlmConfigError,
    LlmProposer,
    render_messages,
    retry_after,
)
from sandbox.checker import check_source
from sandbox.games import get_game
from storage import Store
from tests.engine.chaos_llm import ChaosLLM
from tests.engine.scripted_llm import DEFAULT_PROGRAM, Answer, Hang, Raw, ScriptedLLM, Status

PARENT = "def act(obs):\n    return 0\n"
MODEL = "test-model"
IMPROVED_ANSWER = (
    "The paddle now follows the ball instead of standing still.\n\n"
    f"```python\n{DEFAULT_PROGRAM}```\n"
)


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def context() -> ProposalContext:
    return ProposalContext(
        game=get_game("Pong"),
        parent=ScoredSource(PARENT, -21.0, "p1"),
        feedback="Evaluation on Pong: mean return -21.",
        best=(ScoredSource(PARENT, -21.0, "p1"),),
    )


class Sleeps:
    """Records backoff delays instead of sleeping, on a fake clock that the sleeps advance."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 1000.0

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def proposer(llm: ScriptedLLM, sleeps: Sleeps | None = None, **options) -> LlmProposer:
    options.setdefault("api_key", "test-key")
    options.setdefault("timeout_seconds", 5.0)
    sleeps = sleeps or Sleeps()
    return LlmProposer(
        MODEL,
        base_url=llm.base_url,
        sleep=sleeps,
        clock=sleeps.clock,
        rng=random.Random(0),
        **options,
    )


def test_llm_proposer_returns_the_improved_program(scripted_llm, context):
    llm = scripted_llm([Answer(IMPROVED_ANSWER)])
    proposal = proposer(llm, temperature=0.7, max_tokens=4000).propose(context)

    assert proposal.source == DEFAULT_PROGRAM
    assert check_source(proposal.source).ok
    assert proposal.origin == "llm"
    assert "follows the ball" in proposal.note
    (exchange,) = proposal.exchanges
    assert exchange.error is None and exchange.response == IMPROVED_ANSWER
    assert exchange.model == MODEL
    assert exchange.prompt == render_messages(build_prompt(context))
    assert exchange.latency_seconds is not None and exchange.latency_seconds >= 0

    (request,) = llm.requests
    assert request["model"] == MODEL
    assert request["messages"] == build_prompt(context)
    assert request["temperature"] == 0.7 and request["max_tokens"] == 4000
    assert llm.headers[0]["authorization"] == "Bearer test-key"


def test_llm_proposer_prose_without_code_gives_no_source(scripted_llm, context):
    prose = "I would make the paddle follow the ball more closely."
    llm = scripted_llm([Answer(prose)])
    proposal = proposer(llm).propose(context)
    assert proposal.source is None
    assert proposal.note == NO_CODE_NOTE
    (exchange,) = proposal.exchanges
    assert exchange.response == prose and exchange.error is None


def test_llm_proposer_answer_cut_off_at_the_token_limit_says_so(scripted_llm, context):
    llm = scripted_llm([Answer("Let me think step by step about the ball", finish_reason="length")])
    proposal = proposer(llm).propose(context)
    assert proposal.source is None
    assert "cut off at the token limit" in proposal.note


def test_llm_proposer_retries_429_honouring_retry_after(scripted_llm, context):
    sleeps = Sleeps()
    llm = scripted_llm([Status(429, retry_after=3), Answer(IMPROVED_ANSWER)])
    proposal = proposer(llm, sleeps).propose(context)

    assert proposal.source == DEFAULT_PROGRAM
    first, second = proposal.exchanges
    assert "HTTP 429" in (first.error or "") and first.response is None
    assert second.error is None
    assert sleeps.delays == [3.0]
    assert len(llm.requests) == 2


def test_llm_proposer_caps_a_long_retry_after(scripted_llm, context):
    sleeps = Sleeps()
    llm = scripted_llm([Status(429, retry_after=3600), Answer(IMPROVED_ANSWER)])
    proposer(llm, sleeps, backoff_cap_seconds=60).propose(context)
    assert sleeps.delays == [60.0]


def test_llm_proposer_retries_500_with_exponential_full_jitter(scripted_llm, context):
    sleeps = Sleeps()
    llm = scripted_llm([Status(500), Status(503), Answer(IMPROVED_ANSWER)])
    proposal = proposer(llm, sleeps, backoff_base_seconds=1.0).propose(context)

    assert proposal.source == DEFAULT_PROGRAM
    assert [bool(e.error) for e in proposal.exchanges] == [True, True, False]
    assert "HTTP 500" in (proposal.exchanges[0].error or "")
    assert "HTTP 503" in (proposal.exchanges[1].error or "")
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 1.0 and 0 <= sleeps.delays[1] <= 2.0


def test_llm_proposer_backoff_grows_and_is_capped():
    llm_proposer = LlmProposer(
        MODEL, base_url="http://127.0.0.1:9/v1", rng=random.Random(1), backoff_cap_seconds=60
    )
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60]
    for attempt, ceiling in enumerate(ceilings):
        delays = [llm_proposer.backoff_seconds(attempt, None) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range


def test_llm_proposer_retries_after_a_timeout(scripted_llm, context):
    sleeps = Sleeps()
    llm = scripted_llm([Hang(2.0), Answer(IMPROVED_ANSWER)])
    started = time.monotonic()
    proposal = proposer(llm, sleeps, timeout_seconds=0.5).propose(context)
    elapsed = time.monotonic() - started

    assert proposal.source == DEFAULT_PROGRAM
    first, second = proposal.exchanges
    assert "timed out" in (first.error or "")
    assert first.latency_seconds is not None and 0.4 <= first.latency_seconds < 2.0
    assert second.error is None
    assert len(sleeps.delays) == 1
    assert elapsed < 2.0  # the client gave up on the hung request; it did not wait it out


def test_llm_proposer_retries_connection_errors(context):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    llm_proposer = LlmProposer(
        MODEL,
        base_url=f"http://127.0.0.1:{port}/v1",
        max_retries=2,
        sleep=sleeps,
        clock=sleeps.clock,
    )
    proposal = llm_proposer.propose(context)
    assert proposal.source is None
    assert len(proposal.exchanges) == 3 and len(sleeps.delays) == 2
    assert all("connection error" in (e.error or "") for e in proposal.exchanges)
    assert "retries exhausted" in proposal.note


@pytest.mark.parametrize("code", [400, 401, 403, 404])
def test_llm_proposer_does_not_retry_client_errors(scripted_llm, context, code):
    sleeps = Sleeps()
    llm = scripted_llm(
        [Status(code, message="Incorrect API key provided"), Answer(IMPROVED_ANSWER)]
    )
    proposal = proposer(llm, sleeps).propose(context)

    assert proposal.source is None
    assert len(proposal.exchanges) == 1 and sleeps.delays == []
    assert len(llm.requests) == 1
    assert "not retried" in proposal.note
    assert f"HTTP {code}" in proposal.note and "Incorrect API key provided" in proposal.note


def test_llm_proposer_gives_up_when_retries_are_exhausted(scripted_llm, context):
    sleeps = Sleeps()
    llm = scripted_llm([], when_empty=Status(502))
    proposal = proposer(llm, sleeps, max_retries=2).propose(context)

    assert proposal.source is None
    assert len(proposal.exchanges) == 3 and len(llm.requests) == 3
    assert len(sleeps.delays) == 2  # no sleep after the last attempt
    assert "failed 3 times" in proposal.note and "retries exhausted" in proposal.note
    assert "HTTP 502" in proposal.note


def test_llm_proposer_tokens_and_cost_from_usage_and_prices(scripted_llm, context):
    llm = scripted_llm(
        [Answer(IMPROVED_ANSWER, prompt_tokens=1000, completion_tokens=500)] * 2,
    )
    priced = proposer(llm, prices={MODEL: (2.0, 8.0)}).propose(context)
    (exchange,) = priced.exchanges
    assert (exchange.tokens_in, exchange.tokens_out) == (1000, 500)
    assert exchange.cost == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)

    unpriced = proposer(llm, prices={"other-model": (1.0, 1.0)}).propose(context)
    assert unpriced.exchanges[0].tokens_in == 1000
    assert unpriced.exchanges[0].cost is None


def test_llm_proposer_failed_attempts_have_no_tokens_or_cost(scripted_llm, context):
    llm = scripted_llm([Status(500), Answer(IMPROVED_ANSWER)])
    proposal = proposer(llm, prices={MODEL: (1.0, 1.0)}).propose(context)
    failed = proposal.exchanges[0]
    assert (failed.tokens_in, failed.tokens_out, failed.cost) == (None, None, None)
    assert failed.prompt == proposal.exchanges[1].prompt


def test_llm_proposer_key_from_environment(scripted_llm, context, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    llm = scripted_llm([Answer(IMPROVED_ANSWER)])
    LlmProposer(MODEL, base_url=llm.base_url).propose(context)
    assert llm.headers[0]["authorization"] == "Bearer env-key"


def test_llm_proposer_local_server_needs_no_key(scripted_llm, context):
    llm = scripted_llm([Answer(IMPROVED_ANSWER)])
    assert LlmProposer(MODEL, base_url=llm.base_url).propose(context).source == DEFAULT_PROGRAM
    assert llm.headers[0]["authorization"] == f"Bearer {LOCAL_PLACEHOLDER_KEY}"


@pytest.mark.parametrize("base_url", [None, "https://api.example.com/v1"])
def test_llm_proposer_remote_server_without_key_is_a_clear_error(base_url):
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        LlmProposer(MODEL, base_url=base_url)


def test_retry_after_header_forms():
    assert retry_after({"retry-after": "2.5"}) == 2.5
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= (retry_after({"retry-after": future}) or 0) <= 31


def test_scripted_llm_tuple_steps_callables_and_default_answer(context):
    def by_prompt(body):
        assert "Pong" in body["messages"][1]["content"]
        return ("answer", IMPROVED_ANSWER)

    with ScriptedLLM([("status", 429, 0), by_prompt], when_empty=Answer(IMPROVED_ANSWER)) as llm:
        sleeps = Sleeps()
        first = proposer(llm, sleeps).propose(context)
        assert len(first.exchanges) == 2 and sleeps.delays == []  # Retry-After: 0, no wait
        assert llm.remaining == 0
        assert proposer(llm).propose(context).source == DEFAULT_PROGRAM  # when_empty
        assert len(llm.requests) == 3


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (Raw("not json"), "unreadable response"),
        (Raw("<html>Bad gateway</html>", content_type="text/html"), "no chat completion choice"),
        (Raw('{"choices": []}'), "no chat completion choice"),
    ],
)
def test_llm_proposer_malformed_response_is_recorded_and_retried(scripted_llm, context, raw, error):
    llm = scripted_llm([raw, Answer(IMPROVED_ANSWER)])
    proposal = proposer(llm).propose(context)
    assert proposal.source == DEFAULT_PROGRAM
    first, second = proposal.exchanges
    assert error in (first.error or "") and second.error is None
    if raw.content_type == "text/html":
        assert first.response == raw.body  # what came back instead is kept for the record


# -- reply shapes, recording as it happens, shutdown, threads (issue #12) -----------------------

GENEROUS_SECONDS = 60.0  # an upper bound only a broken implementation reaches


def chaos_proposer(chaos: ChaosLLM, **options) -> LlmProposer:
    options.setdefault("api_key", "test-key")
    options.setdefault("timeout_seconds", 30.0)
    options.setdefault("rng", random.Random(0))
    return LlmProposer(MODEL, base_url=chaos.base_url, **options)


def wait_until(condition, what: str, seconds: float = GENEROUS_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def in_thread(function, *args) -> tuple[threading.Thread, list]:
    """Run `function(*args)` in a thread; its return value lands in the list."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(function(*args)), daemon=True)
    thread.start()
    return thread, out


def test_llm_proposer_reads_list_of_parts_content(context):
    with ChaosLLM(script=["list_content"]) as chaos:
        proposal = chaos_proposer(chaos).propose(context)
    assert proposal.source is not None and "def act(obs)" in proposal.source
    assert check_source(proposal.source).ok
    (exchange,) = proposal.exchanges
    assert exchange.error is None and isinstance(exchange.response, str)
    assert "def act(obs)" in exchange.response


@pytest.mark.parametrize(("kind", "response"), [("int_content", "42"), ("null_content", "")])
def test_llm_proposer_number_or_null_content_is_no_program_not_a_crash(context, kind, response):
    with ChaosLLM(script=[kind]) as chaos:
        proposal = chaos_proposer(chaos).propose(context)
    assert proposal.source is None and NO_CODE_NOTE in proposal.note
    (exchange,) = proposal.exchanges
    assert exchange.response == response and exchange.error is None


def test_llm_proposer_token_counts_that_are_not_numbers_are_unknown(context):
    with ChaosLLM(script=["bad_usage"]) as chaos:
        proposal = chaos_proposer(chaos, prices={MODEL: (1.0, 1.0)}).propose(context)
    assert proposal.source is not None
    (exchange,) = proposal.exchanges
    assert (exchange.tokens_in, exchange.tokens_out, exchange.cost) == (None, None, None)


@pytest.mark.parametrize("kind", ["bad_json", "cut_body"])
def test_llm_proposer_broken_bodies_are_recorded_and_retried(context, kind):
    sleeps = Sleeps()
    with ChaosLLM(script=[kind, "ok"]) as chaos:
        proposal = chaos_proposer(chaos, sleep=sleeps, clock=sleeps.clock).propose(context)
        assert chaos.served == 2
    assert proposal.source is not None
    first, second = proposal.exchanges
    assert first.error and second.error is None
    assert len(sleeps.delays) == 1


def test_llm_proposer_hands_each_attempt_over_before_backing_off(context):
    events: list[tuple[str, object]] = []

    def sleep(seconds: float) -> None:
        events.append(("sleep", seconds))

    def on_exchange(exchange) -> None:
        events.append(("exchange", exchange))

    with ChaosLLM(script=["unavailable_503", "rate_limited", "error_500", "ok"]) as chaos:
        llm_proposer = chaos_proposer(chaos, sleep=sleep, backoff_base_seconds=0.5)
        proposal = llm_proposer.propose(dataclasses.replace(context, on_exchange=on_exchange))
    assert [kind for kind, _ in events] == [
        "exchange",
        "sleep",
        "exchange",
        "sleep",
        "exchange",
        "sleep",
        "exchange",
    ]
    handed = [value for kind, value in events if isinstance(value, LlmExchange)]
    assert tuple(handed) == proposal.exchanges
    assert len({exchange.id for exchange in handed}) == 4
    assert all(len(exchange.id) == 32 for exchange in handed)
    assert ["HTTP 503" in (handed[0].error or ""), handed[3].error] == [True, None]


def test_llm_proposer_recording_failure_propagates(context):
    class Full(Exception):
        pass

    def on_exchange(exchange) -> None:
        raise Full("database or disk is full")

    with ChaosLLM(script=["unavailable_503", "ok"]) as chaos:
        with pytest.raises(Full):
            chaos_proposer(chaos, sleep=Sleeps()).propose(
                dataclasses.replace(context, on_exchange=on_exchange)
            )
        assert chaos.served == 1  # nothing more was asked once the call could not be recorded


def test_llm_proposer_cancel_aborts_a_hung_request_at_once(context):
    with ChaosLLM(script=["hang"], hang_seconds=GENEROUS_SECONDS * 5) as chaos:
        llm_proposer = chaos_proposer(chaos, timeout_seconds=GENEROUS_SECONDS * 5)
        started = time.monotonic()
        thread, out = in_thread(llm_proposer.propose, context)
        wait_until(lambda: chaos.hanging == 1, "the request to reach the server")
        llm_proposer.cancel()
        thread.join(GENEROUS_SECONDS)
        elapsed = time.monotonic() - started
        assert not thread.is_alive(), "propose did not return after cancel()"
        assert chaos.hanging == 1  # the server still holds it: the client gave up, not the server
    (proposal,) = out
    assert proposal.cancelled and proposal.source is None and proposal.note == CANCELLED_NOTE
    (exchange,) = proposal.exchanges
    assert "cancelled" in (exchange.error or "")
    assert elapsed < GENEROUS_SECONDS  # neither the hang nor the client timeout was waited out
    assert llm_proposer._transport.in_flight == 0


def test_llm_proposer_cancel_cuts_a_backoff_short(context):
    handed = threading.Event()
    with ChaosLLM(weights={"unavailable_503": 1.0}) as chaos:
        llm_proposer = chaos_proposer(
            chaos,
            backoff_base_seconds=GENEROUS_SECONDS * 5,
            backoff_cap_seconds=GENEROUS_SECONDS * 5,
        )
        run_context = dataclasses.replace(context, on_exchange=lambda exchange: handed.set())
        thread, out = in_thread(llm_proposer.propose, run_context)
        assert handed.wait(GENEROUS_SECONDS)
        llm_proposer.cancel()
        thread.join(GENEROUS_SECONDS)
        assert not thread.is_alive(), "propose did not return after cancel()"
        assert chaos.served == 1
    (proposal,) = out
    assert proposal.cancelled and len(proposal.exchanges) == 1


def test_llm_proposer_after_cancel_sends_nothing(context):
    with ChaosLLM(weights={"ok": 1.0}) as chaos:
        llm_proposer = chaos_proposer(chaos)
        llm_proposer.cancel()
        proposal = llm_proposer.propose(context)
        assert chaos.served == 0
    assert proposal.cancelled and proposal.exchanges == ()


def test_llm_proposer_serves_several_threads_at_once(context):
    recorded: list = []
    lock = threading.Lock()

    def on_exchange(exchange) -> None:
        with lock:
            recorded.append(exchange)

    run_context = dataclasses.replace(context, on_exchange=on_exchange)
    with ChaosLLM(seed=3, weights={"ok": 3.0, "error_500": 1.0, "list_content": 1.0}) as chaos:
        llm_proposer = chaos_proposer(chaos, sleep=lambda seconds: None, max_retries=8)
        threads = [
            in_thread(lambda: [llm_proposer.propose(run_context) for _ in range(3)])
            for _ in range(4)
        ]
        for thread, _ in threads:
            thread.join(GENEROUS_SECONDS)
            assert not thread.is_alive()
        served = chaos.served
    proposals = [proposal for _, out in threads for proposal in out[0]]
    assert len(proposals) == 12 and all(p.source is not None for p in proposals)
    assert len(recorded) == served == sum(len(p.exchanges) for p in proposals)
    assert len({exchange.id for exchange in recorded}) == served
    assert llm_proposer._transport.in_flight == 0


def test_llm_proposer_429_pauses_the_next_call_of_every_thread(context):
    limited = threading.Event()

    def on_exchange(exchange) -> None:
        if "HTTP 429" in (exchange.error or ""):
            limited.set()

    with ChaosLLM(script=["rate_limited"], weights={"ok": 1.0}, retry_after_seconds=1.5) as chaos:
        llm_proposer = chaos_proposer(chaos, backoff_base_seconds=0.001)
        first, first_out = in_thread(
            llm_proposer.propose, dataclasses.replace(context, on_exchange=on_exchange)
        )
        assert limited.wait(GENEROUS_SECONDS)
        second = llm_proposer.propose(context)  # another caller, after the 429
        first.join(GENEROUS_SECONDS)
        arrivals = list(chaos.arrivals)
    assert second.source is not None and first_out[0].source is not None
    assert len(arrivals) == 3
    # Lower bounds only: a slow machine makes the gaps longer, never shorter.
    assert all(later - arrivals[0] >= 1.5 for later in arrivals[1:])


def test_llm_proposer_429_without_retry_after_also_pauses_other_threads(context):
    limited = threading.Event()

    def on_exchange(exchange) -> None:
        if "HTTP 429" in (exchange.error or ""):
            limited.set()

    with ChaosLLM(script=["rate_limited_bare"], weights={"ok": 1.0}) as chaos:
        llm_proposer = chaos_proposer(chaos, backoff_base_seconds=2.0)
        first, _ = in_thread(
            llm_proposer.propose, dataclasses.replace(context, on_exchange=on_exchange)
        )
        assert limited.wait(GENEROUS_SECONDS)
        assert llm_proposer.propose(context).source is not None
        first.join(GENEROUS_SECONDS)
        arrivals = list(chaos.arrivals)
    assert len(arrivals) == 3
    assert all(later - arrivals[0] >= 1.0 for later in arrivals[1:])  # equal jitter: >= base / 2


def test_llm_proposer_429_delays_the_retry_of_a_call_in_flight(context):
    limited = threading.Event()

    def on_exchange(exchange) -> None:
        if "HTTP 429" in (exchange.error or ""):
            limited.set()

    script = ["hang", "rate_limited"]
    with ChaosLLM(
        script=script,
        weights={"ok": 1.0},
        hang_seconds=GENEROUS_SECONDS * 5,
        after_hang="unavailable_503",
        retry_after_seconds=1.5,
    ) as chaos:
        llm_proposer = chaos_proposer(chaos, backoff_base_seconds=0.001)
        in_flight, in_flight_out = in_thread(llm_proposer.propose, context)
        wait_until(lambda: chaos.hanging == 1, "the first request to hang")
        limited_caller, _ = in_thread(
            llm_proposer.propose, dataclasses.replace(context, on_exchange=on_exchange)
        )
        assert limited.wait(GENEROUS_SECONDS)
        chaos.release_hangs()  # the call in flight now fails with a 503 and retries
        in_flight.join(GENEROUS_SECONDS)
        limited_caller.join(GENEROUS_SECONDS)
        kinds, arrivals = list(chaos.kinds), list(chaos.arrivals)
    (proposal,) = in_flight_out
    assert [e.error is None for e in proposal.exchanges] == [False, True]
    assert "HTTP 503" in (proposal.exchanges[0].error or "")
    assert kinds[:2] == ["hang", "rate_limited"] and len(arrivals) == 4
    assert all(later - arrivals[1] >= 1.5 for later in arrivals[2:])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"connect_timeout_seconds": -1}, "connect_timeout_seconds"),
        ({"max_retries": -1}, "max_retries"),
        ({"backoff_base_seconds": 5, "backoff_cap_seconds": 1}, "backoff"),
    ],
)
def test_llm_proposer_bad_settings_are_one_line_errors(options, message):
    with pytest.raises(LlmConfigError, match=message) as error:
        LlmProposer(MODEL, base_url="http://127.0.0.1:9/v1", **options)
    assert "\n" not in str(error.value)


def test_llm_proposer_timeout_is_configurable(context):
    with ChaosLLM(script=["hang"], hang_seconds=GENEROUS_SECONDS * 5) as chaos:
        proposal = chaos_proposer(chaos, timeout_seconds=0.5, max_retries=0).propose(context)
    (exchange,) = proposal.exchanges
    assert exchange.error == "timed out after 0.5 s"
    assert not proposal.cancelled


def test_rate_gate_honours_retry_after_and_never_reopens_earlier():
    clock = Sleeps()
    gate = RateGate(base_seconds=1.0, cap_seconds=60.0, clock=clock.clock, rng=random.Random(0))
    assert gate.remaining_seconds() == 0.0
    assert gate.rate_limited(10.0) == 10.0
    assert gate.rate_limited(2.0) == 2.0  # a shorter pause from another thread...
    assert gate.remaining_seconds() == 10.0  # ...does not reopen the gate earlier
    assert gate.rate_limited(3600.0) == 60.0  # capped
    clock(60.0)
    assert gate.remaining_seconds() == 0.0


def test_rate_gate_without_retry_after_doubles_until_an_answer():
    clock = Sleeps()
    gate = RateGate(base_seconds=1.0, cap_seconds=8.0, clock=clock.clock, rng=random.Random(0))
    pauses = [gate.rate_limited(None) for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= p <= c for p, c in zip(pauses, ceilings, strict=True))
    assert gate.limited_in_a_row == 6
    gate.answered()
    assert gate.limited_in_a_row == 0 and 0.5 <= gate.rate_limited(None) <= 1.0


@pytest.mark.parametrize("where", ["request", "backoff"])
def test_llm_proposer_cancel_from_a_signal_handler_in_the_proposing_thread(context, where):
    """What SIGTERM does: the handler runs in the main thread, the one blocked in propose."""
    script = ["hang"] if where == "request" else ["unavailable_503"]
    with ChaosLLM(script=script, weights={"ok": 1.0}, hang_seconds=GENEROUS_SECONDS * 5) as chaos:
        llm_proposer = chaos_proposer(
            chaos,
            timeout_seconds=GENEROUS_SECONDS * 5,
            backoff_base_seconds=GENEROUS_SECONDS * 5,
            backoff_cap_seconds=GENEROUS_SECONDS * 5,
        )
        previous = signal.signal(signal.SIGUSR1, lambda signum, frame: llm_proposer.cancel())
        reached = (
            (lambda: chaos.hanging == 1) if where == "request" else (lambda: chaos.served == 1)
        )

        def send_signal_once_reached() -> None:
            wait_until(reached, "the proposer to be waiting")
            if where == "backoff":
                time.sleep(0.2)  # most often inside the backoff wait by then; earlier works too
            os.kill(os.getpid(), signal.SIGUSR1)

        sender = threading.Thread(target=send_signal_once_reached, daemon=True)
        try:
            sender.start()
            started = time.monotonic()
            proposal = llm_proposer.propose(context)
            elapsed = time.monotonic() - started
        finally:
            sender.join(GENEROUS_SECONDS)
            signal.signal(signal.SIGUSR1, previous)
    assert proposal.cancelled and len(proposal.exchanges) == 1
    assert elapsed < GENEROUS_SECONDS  # far less than the hang, timeout or backoff


KILLED_DURING_BACKOFF = """
import random, sys
sys.path.insert(0, sys.argv[3])
from engine.proposers.base import ProposalContext, ScoredSource
from engine.proposers.llm import LlmProposer
from sandbox.games import get_game
from storage import Store

store = Store.open(sys.argv[1])
run = store.create_run("Pong", {})
print("run", run.id, flush=True)


def record(exchange):
    store.record_llm_call(run.id, exchange)
    print("recorded", exchange.id, flush=True)


proposer = LlmProposer(
    "m",
    base_url=sys.argv[2],
    api_key="k",
    max_retries=10,
    backoff_base_seconds=600.0,
    backoff_cap_seconds=600.0,
    rng=random.Random(0),  # first backoff: 506 s, far longer than this test waits
)
parent = ScoredSource("def act(obs):\\n    return 0\\n", None, "p")
context = ProposalContext(game=get_game("Pong"), parent=parent, feedback="", on_exchange=record)
proposer.propose(context)
"""


def test_llm_proposer_attempts_recorded_as_they_end_survive_kill_9(tmp_path):
    """Issue #12's "3 served, 0 recorded": a process killed while backing off from 503s."""
    script = tmp_path / "propose.py"
    script.write_text(KILLED_DURING_BACKOFF)
    db = tmp_path / "calls.db"
    root = str(Path(__file__).resolve().parents[2])
    with ChaosLLM(weights={"unavailable_503": 1.0}) as chaos:
        child = subprocess.Popen(
            [sys.executable, str(script), str(db), chaos.base_url, root],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            run_line = child.stdout.readline()
            recorded_line = child.stdout.readline()  # blocks until the first attempt is stored
            assert recorded_line.startswith("recorded "), (
                child.stderr.read() if child.stderr else ""
            )
        finally:
            child.kill()
            child.communicate(timeout=GENEROUS_SECONDS)
        served = chaos.served
    run_id = run_line.split()[1]
    with Store.open(db, create=False) as store:
        calls = store.llm_calls(run_id)
    assert served == len(calls) == 1
    assert calls[0].id == recorded_line.split()[1] and "HTTP 503" in (calls[0].error or "")
