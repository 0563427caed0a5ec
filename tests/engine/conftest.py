"""Fixtures for engine tests: a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from tests.engine.scripted_llm import Script, ScriptedLLM


@pytest.fixture
def scripted_llm() -> Iterator[Callable[..., ScriptedLLM]]:
    """Start a ScriptedLLM with the given steps: `llm = scripted_llm([Answer(text)])`.

    Every server started through the fixture is stopped when the test ends.
    """
    started: list[ScriptedLLM] = []

    def start(steps: Iterable[Script] = (), **options: Any) -> ScriptedLLM:
        llm = ScriptedLLM(steps, **options).start()
        started.append(llm)
        return llm

    yield start
    for llm in started:
        llm.stop()
