"""LlmProposer over real HTTP (the real `openai` client) against the scripted server."""

from __future__ import annotations

import random
import socket
import time

import pytest

from engine.prompts import build_prompt
from engine.proposers.base import ProposalContext, ScoredSource
from engine.proposers.llm import (
    LOCAL_PLACEHOLDER_KEY,
    NO_CODE_NOTE,
    LlmProposer,
    render_messages,
    retry_after,
)
from sandbox.checker import check_source
from sandbox.games import get_game
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
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def proposer(llm: ScriptedLLM, sleeps: Sleeps | None = None, **options) -> LlmProposer:
    options.setdefault("api_key", "test-key")
    options.setdefault("timeout_seconds", 5.0)
    return LlmProposer(
        MODEL,
        base_url=llm.base_url,
        sleep=sleeps or Sleeps(),
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
        MODEL, base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, sleep=sleeps
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
        assert len(first.exchanges) == 2 and sleeps.delays == [0.0]
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
