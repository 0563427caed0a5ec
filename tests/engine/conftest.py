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


@pytest.fixture(scope="session")
def real_run_db(tmp_path_factory: pytest.TempPathFactory, bwrap_backend: Any) -> tuple[Any, str]:
    """A database made by a real short run through the CLI (Pong, sticky actions, bwrap), and
    its run id. Shared by the view and web tests: never modify it, copy it
    (`shutil.copy`) first."""
    import json

    from engine.cli import main

    path = tmp_path_factory.mktemp("real_run") / "run.db"
    args = ["run", "--game", "Pong", "--iterations", "2", "--episodes", "1"]
    args += ["--max-steps", "300", "--sandbox", "bwrap", "--db", str(path), "--json"]
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0
    return path, json.loads(out.getvalue().strip().splitlines()[-1])["run_id"]
