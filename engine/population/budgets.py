"""Whether a run's budgets are spent: a pure function of the settings and the counters."""

from __future__ import annotations

from engine.config import RunConfig


def budget_reason(
    config: RunConfig, env_steps: int, tokens: int, cost: float, elapsed_seconds: float
) -> str | None:
    """The first budget spent, as the run's stop reason, or None. Counters cover everything
    played and every token (smoke, training, held-out; failed calls too); wall time is this
    invocation's."""
    if config.max_env_steps is not None and env_steps >= config.max_env_steps:
        return f"budget: {env_steps} env steps >= {config.max_env_steps}"
    if config.max_tokens is not None and tokens >= config.max_tokens:
        return f"budget: {tokens} LLM tokens >= {config.max_tokens}"
    if config.max_cost is not None and cost >= config.max_cost:
        return f"budget: LLM cost {cost:.4f} >= {config.max_cost}"
    if config.max_time_seconds is not None and elapsed_seconds >= config.max_time_seconds:
        return f"budget: {elapsed_seconds:.0f} s wall time >= {config.max_time_seconds:g} s"
    return None
