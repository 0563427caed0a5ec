"""`evocade log RUN` and `evocade history RUN`: every iteration, failed ones included, and why.

The end-to-end test makes a real run (`evocade run` with the real `openai` client against the
scripted server, real sandbox) whose iterations fail in each way a proposal can: no code in
the reply, a program the checker rejects, one that raises, then a good one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.cli import main
from storage import Store
from tests.engine.scripted_llm import DEFAULT_PROGRAM, Answer, ScriptedLLM
from tests.storage.conftest import database, postgres_admin, postgres_url  # noqa: F401
from tests.storage.factories import PONG_ENV, policy, rejected_result, result

FENCE = "```python\n{}\n```"
REJECTED = "import os\n\ndef act(obs):\n    return 0\n"
RAISES = "def act(obs):\n    raise RuntimeError('oops from the policy')\n"
PROSE = "I would move the paddle towards the ball, but I cannot write code today."


@dataclass(frozen=True)
class RealRun:
    db: Path
    run_id: str


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRun]:
    from tests.conftest import backend_or_skip

    backend_or_skip("bwrap")
    db = tmp_path_factory.mktemp("log") / "run.db"
    llm = ScriptedLLM(
        [
            Answer(PROSE, prompt_tokens=1000, completion_tokens=20),
            Answer(FENCE.format(REJECTED), prompt_tokens=1100, completion_tokens=30),
            Answer(FENCE.format(RAISES), prompt_tokens=1200, completion_tokens=40),
            Answer(FENCE.format(DEFAULT_PROGRAM), prompt_tokens=1300, completion_tokens=50),
        ],
    ).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OPENAI_API_KEY", "test")
            code = main(
                [
                    "run",
                    "--game",
                    "Pong",
                    "--model",
                    "scripted-model",
                    "--base-url",
                    llm.base_url,
                    "--iterations",
                    "4",
                    "--concurrency",  # the scripted answers come in iteration order
                    "1",
                    "--episodes",
                    "1",
                    "--max-steps",
                    "120",
                    "--sandbox",
                    "bwrap",
                    "--db",
                    str(db),
                ]
            )
        assert code == 0
    finally:
        llm.stop()
    with Store.open(db, create=False) as store:
        (run,) = store.runs()
    yield RealRun(db, run.run_id)


def _ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _blocks(out: str) -> dict[str, str]:
    """The log's text cut into one block per iteration, keyed "iteration N"."""
    blocks: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        match = re.match(r"^(iteration \d+|seed)\b", line)
        if match:
            current = match.group(1)
            blocks[current] = ""
        elif line.startswith("-- "):
            current = None
        if current:
            blocks[current] += line + "\n"
    return blocks


@pytest.mark.bwrap
def test_cli_log_shows_every_iteration_and_why_it_failed(
    real_run: RealRun, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "log", real_run.run_id[:8], "--db", str(real_run.db))
    assert out.startswith(
        f"run {real_run.run_id[:8]} (Pong, finished): 4 iterations shown, 3 not ok"
    )
    blocks = _blocks(out)
    assert list(blocks) == ["seed", "iteration 1", "iteration 2", "iteration 3", "iteration 4"]
    first, second, third, fourth = (blocks[f"iteration {n}"] for n in range(1, 5))
    assert first.split()[2] == "no_program" and "no program" in first
    assert "tokens 1000 in / 20 out" in first
    assert second.split()[2] == "rejected"
    assert re.search(r"checker: [0-9a-f]{8}:1:1: import-not-allowed: import of 'os'", second)
    assert "tokens 1100 in / 30 out" in second
    assert third.split()[2] == "error"
    assert "RuntimeError: oops from the policy" in third
    assert fourth.split()[2] == "ok" and "tokens 1300 in / 50 out" in fourth
    for block in (first, second, third, fourth):
        assert "feedback sent:\n    | " in block
    # The feedback of the iteration after the rejected one carried the checker's verdict.
    assert "not allowed" in _ok(capsys, "log", real_run.run_id, "--db", str(real_run.db), "--full")
    assert "-- run_finished" in out


@pytest.mark.bwrap
def test_cli_log_json_and_last(real_run: RealRun, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(_ok(capsys, "log", real_run.run_id, "--db", str(real_run.db), "--json"))
    iterations = [e for e in data["entries"] if e["type"] == "iteration"]
    assert [e["status"] for e in iterations] == ["no_program", "rejected", "error", "ok"]
    assert [e["iteration"] for e in iterations] == [0, 1, 2, 3]
    assert iterations[0]["program_id"] is None
    assert all(call["tokens_in"] for e in iterations for call in e["llm_calls"])
    assert iterations[1]["diagnostics"] and iterations[2]["evaluations"][0]["errors"]
    last = json.loads(
        _ok(capsys, "log", real_run.run_id, "--db", str(real_run.db), "--json", "--last", "1")
    )
    assert [e["status"] for e in last["entries"] if e["type"] == "iteration"] == ["ok"]


@pytest.mark.bwrap
def test_cli_history_shows_failed_iterations(
    real_run: RealRun, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "history", real_run.run_id, "--db", str(real_run.db))
    body = out.splitlines()[1:]
    statuses = [line.split()[1] if line.split()[0] == "-" else line.split()[6] for line in body]
    assert statuses[0] == "ok"  # the seed
    assert "no_program" in body[1] and "iteration 1:" in body[1]
    assert statuses[2:] == ["rejected", "error", "ok"]
    rows = json.loads(_ok(capsys, "history", real_run.run_id, "--db", str(real_run.db), "--json"))
    assert [row["kind"] for row in rows] == ["program", "no_program", *["program"] * 3]


def test_cli_log_tolerates_events_of_other_loop_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing fields, odd types, an event naming a program that is not there: "-", no crash."""
    db = tmp_path / "odd.db"
    with Store.open(db) as store:
        run = store.create_run("Pong", PONG_ENV)
        seed = store.add_program(run.id, policy(0), origin="seed")
        store.record_evaluation(seed.id, result([-5.0]))
        store.add_event(run.id, "iteration", "")  # no data at all
        store.add_event(run.id, "iteration", "", data={"iteration": "three", "status": 7})
        store.add_event(run.id, "iteration", "", data={"program": "f" * 32, "status": "ok"})
        store.add_event(run.id, "budget_hit", "budget: 100 env steps >= 100")
    before = db.read_bytes()
    out = _ok(capsys, "log", run.id, "--db", str(db))
    iterations = [line for line in out.splitlines() if line.startswith("iteration")]
    assert len(iterations) == 3
    assert all(line.startswith("iteration -") for line in iterations)
    assert "program ffffffff is not in the database" in out
    assert "-- budget_hit: budget: 100 env steps >= 100" in out
    assert "llm: - (no LLM call recorded)" in out and "feedback sent: -" in out
    json.loads(_ok(capsys, "log", run.id, "--db", str(db), "--json"))
    assert db.read_bytes() == before


def test_cli_log_unknown_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "evocade.db"
    with Store.open(db) as store:
        store.create_run("Pong", PONG_ENV)
    before = db.read_bytes()
    assert main(["log", "0000", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err == "error: no run matches '0000'\n" and db.read_bytes() == before


def test_cli_history_and_log_on_each_database(
    database: str | Path,  # noqa: F811 - the fixture imported above: SQLite and PostgreSQL
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The loop's records, as it writes them, read back the same on SQLite and PostgreSQL."""
    with Store.open(database) as store:
        run = store.create_run("Pong", PONG_ENV)
        seed = store.add_program(run.id, policy(0), origin="seed")
        store.record_evaluation(seed.id, result([-20.0]))
        store.set_head(run.id, seed.id)
        store.add_event(
            run.id,
            "iteration",
            "iteration 0: no_program",
            data={"iteration": 0, "program": None, "status": "no_program", "note": "no code"},
        )
        broken = store.add_program(run.id, "import os\n", parent_id=seed.id)
        store.record_evaluation(broken.id, rejected_result(), seeds=[0])
        store.add_event(
            run.id,
            "iteration",
            "iteration 1: rejected",
            data={"iteration": 1, "program": broken.id, "status": "rejected", "note": ""},
        )
        store.revert(run.id, seed.id, "rollback to best")
    where = str(database)
    rows = json.loads(_ok(capsys, "history", run.id, "--db", where, "--json"))
    assert [row["kind"] for row in rows] == ["program", "no_program", "program", "revert"]
    assert rows[1]["message"] == "no code" and rows[2]["status"] == "rejected"
    assert (rows[3]["from_program_id"], rows[3]["program_id"]) == (seed.id, seed.id)
    text = _ok(capsys, "history", run.id, "--db", where)
    assert "no_program      iteration 1: no code" in text
    assert f"revert    head {seed.id[:8]} -> {seed.id[:8]}: rollback to best" in text
    log = json.loads(_ok(capsys, "log", run.id, "--db", where, "--json"))
    iterations = [e for e in log["entries"] if e["type"] == "iteration"]
    assert [(e["iteration"], e["status"]) for e in iterations] == [
        (0, "no_program"),
        (1, "rejected"),
    ]
    assert iterations[1]["diagnostics"] == [
        f"{broken.id[:8]}:1:0: import: import os is not allowed"
    ]
