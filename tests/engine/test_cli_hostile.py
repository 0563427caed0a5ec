"""Untrusted text never reaches the terminal raw, whichever command prints it (issue #11.4).

A database is filled, through the real `Store`, with hostile strings wherever an LLM, a policy
or a tampered file could put them (source, note, checker diagnostics, episode errors, LLM
prompts and errors, event messages, even a run's game name). Every command is then run for
real, in text and JSON mode, and neither stdout nor stderr may carry a raw control character,
while the text itself must still be shown, as visible escapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.cli import main
from storage import LlmExchange, Store
from tests.storage.factories import PONG_ENV, result

FORGED = (
    "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b]52;c;ZWNobyBvd25lZA==\x07\x9b31m\u202e status ok, mean 21"
)
SHOWN = "\\x1b[2J\\x1b[H\\x1b]0;owned\\x07\\x1b]52;c;ZWNobyBvd25lZA==\\x07\\x9b31m\\u202e status ok"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\r")
MARKUP = "[bold red]not markup[/]"


@dataclass(frozen=True)
class Hostile:
    db: Path
    run: str
    other_run: str
    seed: str
    child: str


def _source(number: int) -> str:
    return f"def act(obs):\n    # {FORGED}\n    return {number}  # {MARKUP}\n"


@pytest.fixture
def hostile(tmp_path: Path) -> Hostile:
    db = tmp_path / "hostile.db"
    with Store.open(db) as store:
        run = store.create_run("Pong", PONG_ENV, {"iterations": 3})
        seed = store.add_program(
            run.id, _source(0), origin="seed", note=f"starter\n{FORGED} {MARKUP}"
        )
        failed = result([-3.0, 5.0], episode_statuses=["ok", "error"], status="error")
        failed["episodes"][1]["error"] = f"Traceback (most recent call last):\nException: {FORGED}"
        failed["episodes"][1]["output"] = f"printed {FORGED}"
        store.record_evaluation(seed.id, failed)
        store.set_head(run.id, seed.id)
        child = store.add_program(
            run.id,
            _source(1),
            parent_id=seed.id,
            note=FORGED,
            check_report={
                "ok": False,
                "diagnostics": [{"rule": "x", "line": 1, "column": 1, "message": FORGED}],
            },
        )
        store.record_llm_call(
            run.id,
            LlmExchange(
                prompt=f"## Feedback on the current program\n{FORGED}\n## Task\nwrite code",
                model=f"model{FORGED}",
                response=FORGED,
                tokens_in=10,
                tokens_out=5,
                cost=0.001,
                error=FORGED,
            ),
            parent_program_id=seed.id,
            produced_program_id=child.id,
        )
        store.add_event(
            run.id,
            "iteration",
            FORGED,
            data={"iteration": 0, "program": child.id, "status": "rejected", "note": FORGED},
        )
        store.add_event(
            run.id,
            "iteration",
            FORGED,
            data={"iteration": 1, "program": None, "status": "no_program", "note": FORGED},
        )
        store.revert(run.id, seed.id, message=FORGED)
        other = store.create_run(f"Pong{FORGED}"[:60], {})
    return Hostile(db, run.id, other.id, seed.id, child.id)


def _commands(h: Hostile, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "runs": ["runs"],
        "show seed": ["show", h.seed[:8]],
        "show child": ["show", h.child[:8]],
        "lineage": ["lineage", h.seed[:8]],
        "diff": ["diff", h.seed[:8], h.child[:8]],
        "best": ["best", h.run[:8], "--export", str(tmp_path / "best.py")],
        "history": ["history", h.run[:8]],
        "log": ["log", h.run[:8], "--full"],
        "revert": ["revert", h.run[:8], "--to", h.seed[:8]],
    }


SHOWS_TEXT = {"show seed", "show child", "diff", "history", "log", "runs"}  # lineage: ids only


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize(
    "name",
    ["runs", "show seed", "show child", "lineage", "diff", "best", "history", "log", "revert"],
)
def test_cli_hostile_database_text_is_escaped_by_every_command(
    hostile: Hostile,
    tmp_path: Path,
    name: str,
    as_json: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _commands(hostile, tmp_path)[name] + ["--db", str(hostile.db)]
    code = main(args + (["--json"] if as_json else []))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for stream in (captured.out, captured.err):
        for raw in RAW:
            assert raw not in stream, f"{raw!r} reached the terminal from {name}"
    if as_json:
        json.loads(captured.out)
    elif name in SHOWS_TEXT:
        assert SHOWN in captured.out  # the text is there, as visible escapes


def test_cli_hostile_note_cannot_forge_a_line(
    hostile: Hostile, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", hostile.seed, "--db", str(hostile.db)]) == 0
    out = capsys.readouterr().out
    note = next(line for line in out.splitlines() if line.startswith("note "))
    assert note.startswith("note     starter\\n\\x1b[2J")  # one line, newline shown as \n
    assert MARKUP in note  # and rich markup stays literal text


def test_cli_hostile_show_source_keeps_lines_but_escapes_controls(
    hostile: Hostile, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", hostile.seed, "--db", str(hostile.db)]) == 0
    out = capsys.readouterr().out
    source = out.split("\nsource\n", 1)[1].splitlines()
    assert source[0] == "def act(obs):"
    assert source[1] == f"    # {SHOWN}, mean 21"
    assert source[2] == f"    return 0  # {MARKUP}"


def test_cli_hostile_export_header_cannot_inject_code(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The header of an exported policy is made of database values: one comment line each."""
    target = tmp_path / "exported.py"
    assert main(["best", hostile.run, "--db", str(hostile.db), "--export", str(target)]) == 0
    capsys.readouterr()
    header = target.read_text().split("\n\n", 1)[0].splitlines()
    assert all(line.startswith("# ") for line in header)


def test_cli_hostile_argument_in_error_message_is_escaped(
    hostile: Hostile, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", FORGED, "--db", str(hostile.db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no program matches") and err.count("\n") == 1
    for raw in RAW:
        assert raw not in err
    assert main(["evaluate", f"/nonexistent/{FORGED}.py", "--game", "Pong"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no such file") and err.count("\n") == 1
    for raw in RAW:
        assert raw not in err
    assert main(["runs", f"--{FORGED}"]) == 2  # typer's own usage errors too
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    for raw in RAW:
        assert raw not in err


def test_cli_hostile_doctor_escapes_database_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / f"x{FORGED[:20]}.db"
    main(["doctor", "--db", str(db)])
    out = capsys.readouterr().out
    for raw in RAW:
        assert raw not in out
    assert "\\x1b[2J" in out


def _no_raw(stream: str, name: str) -> None:
    for raw in RAW:
        assert raw not in stream, f"{raw!r} reached the terminal from {name}"


@pytest.mark.bwrap  # replay and verify run the real emulator on the host (no sandbox)
def test_cli_hostile_replay_verify_and_plot_escape_stored_text(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An evaluation tampered with (hostile episode status and error, a stored length that its
    action log does not have) is replayed, verified and plotted: the text is shown, escaped."""
    import sqlite3

    with Store.open(hostile.db) as store:
        evaluation = store.record_evaluation(hostile.child, result([2.0], lengths=[80]))
        game = f"Pong{FORGED}"[:60]
        scored = store.create_run(game, PONG_ENV, {"episodes": 2, "first_seed": 0})
        program = store.add_program(scored.id, _source(2), origin="seed")
        store.record_evaluation(program.id, result([1.0, 3.0], game=game))
    with sqlite3.connect(hostile.db) as connection:  # storage refuses such a status: a tamper
        (stored,) = connection.execute(
            "SELECT episodes FROM evaluation WHERE id = ?", (evaluation.id,)
        ).fetchone()
        episodes = json.loads(stored)
        episodes[0].update(status=FORGED, error=FORGED)
        connection.execute(
            "UPDATE evaluation SET episodes = ? WHERE id = ?", (json.dumps(episodes), evaluation.id)
        )
    connection.close()
    commands = {
        "replay": (["replay", evaluation.id, "--out", str(tmp_path / "r.gif"), "--scale", "1"], 0),
        "verify run": (["verify", hostile.run], 1),
        "verify run json": (["verify", hostile.run, "--json"], 1),
        "verify evaluation": (["verify", evaluation.id], 1),
        "plot": (["plot", scored.id, hostile.other_run, "--out", str(tmp_path / "p.svg")], 0),
    }
    for name, (args, expected) in commands.items():
        code = main([*args, "--db", str(hostile.db)])
        captured = capsys.readouterr()
        assert code == expected, (name, captured.out, captured.err)
        _no_raw(captured.out + captured.err, name)
        if name == "replay" or name == "verify evaluation":
            assert SHOWN in captured.out, name  # the stored status, as visible escapes
        if name == "plot":
            assert "\\x1b[2J" in captured.out  # the runs' game names
            from xml.etree import ElementTree

            ElementTree.parse(tmp_path / "p.svg")  # well-formed: no raw control character
            assert "\\x1b[2J" in (tmp_path / "p.svg").read_text()
        if name.endswith("json"):
            json.loads(captured.out)


def test_cli_hostile_serve_escapes_the_database_location(tmp_path: Path) -> None:
    """The one line `serve` prints names the database: a file name can carry escapes too."""
    import socket
    import subprocess
    import sys
    import time

    db = tmp_path / f"x{FORGED[:20]}.db"
    with Store.open(db) as store:
        store.create_run("Pong", PONG_ENV, {})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "serve.log"
    args = [sys.executable, "-m", "engine.cli", "serve", "--db", str(db), "--port", str(port)]
    with log.open("w") as sink:
        server = subprocess.Popen(
            [*args, "--cache-dir", str(tmp_path / "cache")], stdout=sink, stderr=sink
        )
        try:
            deadline = time.monotonic() + 120
            while "serving" not in log.read_text() and server.poll() is None:
                assert time.monotonic() < deadline, "serve printed nothing within 120 s"
                time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(timeout=60)
    printed = log.read_text()
    assert "serving " in printed and "\\x1b[2J" in printed, printed
    _no_raw(printed, "serve")
