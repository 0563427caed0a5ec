"""Run usage counted from the stored rows: what budgets resume from (#12)."""

from __future__ import annotations

import pytest

from storage import LlmExchange, NotFoundError, Store
from tests.storage.factories import PONG_ENV, policy, rejected_result, result


def test_run_usage_of_a_new_run_is_zero(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    usage = store.run_usage(run.id)
    assert (usage.calls, usage.tokens, usage.cost, usage.env_steps, usage.evaluations) == (
        0,
        0,
        0.0,
        0,
        0,
    )


def test_run_usage_sums_every_call_and_evaluation_of_the_run(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    other = store.create_run("Pong", PONG_ENV)
    seed = store.add_program(run.id, policy(1), origin="seed")
    child = store.add_program(run.id, policy(2), parent_id=seed.id)
    store.record_evaluation(seed.id, result([-21.0], lengths=[300]))
    store.record_evaluation(seed.id, result([-20.0, -19.0], lengths=[800, 900]))
    store.record_evaluation(child.id, rejected_result(), seeds=[0])
    calls = [  # a killed iteration's calls count as much as a finished one's
        {"tokens_in": 1000, "tokens_out": 200, "cost": 0.5},
        {"error": "HTTP 503"},
        {"error": "HTTP 429"},
        {"tokens_in": 1100, "tokens_out": 300, "cost": 0.75},
        {"tokens_in": 900, "tokens_out": 100},  # a model without a price
    ]
    for call in calls:
        store.record_llm_call(run.id, LlmExchange(prompt="p", model="m", **call))  # type: ignore[arg-type]
    store.record_llm_call(
        other.id,
        LlmExchange(prompt="p", model="m", tokens_in=5, tokens_out=5, cost=9.0),
    )

    usage = store.run_usage(run.id)
    assert (usage.calls, usage.failed_calls, usage.unpriced_calls) == (5, 2, 1)
    assert (usage.tokens_in, usage.tokens_out, usage.tokens) == (3000, 600, 3600)
    assert usage.cost == pytest.approx(1.25)
    assert (usage.evaluations, usage.env_steps) == (3, 2000)


def test_run_usage_of_an_unknown_run(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.run_usage("0" * 32)
