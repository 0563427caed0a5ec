"""`evocade check / evaluate / games` through the real entry point: exit codes and messages.

(The evaluate report, its bad values, progress and Ctrl-C: tests/engine/test_cli_evaluate.py.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from tests.conftest import PROGRAMS


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["evaluate", "/nonexistent/policy.py", "--game", "Pong"], "no such file"),
        (["evaluate", str(PROGRAMS / "pong_tracker.py"), "--game", "Pongg"], "unknown game"),
        (
            ["evaluate", str(PROGRAMS / "pong_tracker.py"), "--game", "Pong", "--episodes", "-1"],
            "--episodes must be at least 1 (got -1)",
        ),
        (
            ["evaluate", str(PROGRAMS / "pong_tracker.py"), "--game", "Pong", "--episodes", "x"],
            "--episodes",
        ),
        (["evaluate", str(PROGRAMS / "pong_tracker.py")], "--game"),
        (
            ["evaluate", str(PROGRAMS / "pong_tracker.py"), "--game", "Pong", "--sandbox", "x"],
            "not one of 'auto', 'bwrap', 'docker', 'none'",  # the choices are `BackendName`'s
        ),
        (["evaluate", str(PROGRAMS), "--game", "Pong"], "is a directory"),
        (["check", "/nonexistent/policy.py"], "no such file"),
    ],
)
def test_cli_bad_input_gives_one_line_error(args, expected, capsys) -> None:
    code = main(args)
    assert code == 2
    assert expected in _one_line_error(capsys)


def test_cli_evaluate_syntax_error_is_rejected_with_file_line_col(tmp_path: Path, capsys) -> None:
    policy = tmp_path / "broken.py"
    policy.write_text("def act(obs)\n    return 0\n")
    code = main(["evaluate", str(policy), "--game", "Pong", "--sandbox", "none"])
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert code == 1
    assert out[0].startswith(f"{policy}:1:13: syntax: ")
    assert out[-1] == f"{policy}: rejected by the static checker, 1 problem; nothing was run"
    assert "WARNING" not in captured.err  # rejected before any sandbox, even `none`


def test_cli_check_exit_codes_and_json(tmp_path: Path, capsys) -> None:
    assert main(["check", str(PROGRAMS / "pong_tracker.py")]) == 0
    assert capsys.readouterr().out == f"{PROGRAMS / 'pong_tracker.py'}: ok\n"
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef act(obs):\n    return open('/etc/passwd')\n")
    assert main(["check", str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    rules = {d["rule"] for d in report["diagnostics"]}
    assert "import-not-allowed" in rules
    assert all(d["line"] >= 1 for d in report["diagnostics"])


def test_cli_check_prints_diagnostics_as_file_line_col(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef act(obs):\n    return open('/etc/passwd')\n")
    assert main(["check", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    pattern = re.compile(rf"^{re.escape(str(bad))}:(\d+):(\d+): ([a-z-]+): .+")
    found = [pattern.match(line) for line in lines[:-1]]
    assert all(found), lines
    assert ("1", "1", "import-not-allowed") in {m.groups() for m in found if m}
    assert any(m.group(1) == "4" for m in found if m)  # open() on line 4
    assert lines[-1] == f"{bad}: rejected, {len(lines) - 1} problems"


def test_cli_check_accepts_utf8_bom(tmp_path: Path, capsys) -> None:
    policy = tmp_path / "windows.py"
    policy.write_bytes(b"\xef\xbb\xbf" + (PROGRAMS / "pong_tracker.py").read_bytes())
    assert main(["check", str(policy)]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.strip() == f"{policy}: ok"


def test_cli_check_escapes_hostile_source_and_file_name(tmp_path: Path, capsys) -> None:
    policy = tmp_path / "evil\x1b]0;title\x07\u202e.py"
    policy.write_text("def act(obs)  # \x1b]52;c;ZWNobw==\x07\x1b[2J\n    return 0\n")
    assert main(["check", str(policy)]) == 1
    out = capsys.readouterr().out
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in out
    assert "evil\\x1b]0;title\\x07\\u202e.py:1:" in out  # shown, as visible escapes
    assert "\\x1b]52;c;" in out
    assert main(["check", str(policy), "--json"]) == 1
    raw_json = capsys.readouterr().out
    assert "\x1b" not in raw_json and "\x07" not in raw_json
    assert json.loads(raw_json)["ok"] is False


def test_cli_games_lists_all_eight(capsys) -> None:
    assert main(["games", "--json"]) == 0
    games = json.loads(capsys.readouterr().out)
    names = {game["name"] for game in games}
    assert names >= {
        "Pong",
        "Breakout",
        "SpaceInvaders",
        "Freeway",
        "Asterix",
        "Enduro",
        "Qbert",
        "Seaquest",
    }
    pong = next(game for game in games if game["name"] == "Pong")
    assert "RIGHT" in pong["description"] and "smaller y" in pong["description"]


@pytest.mark.bwrap
def test_cli_evaluate_json_through_console_script(bwrap_backend) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "evaluate",
            str(PROGRAMS / "pong_tracker.py"),
            "--game",
            "pong",
            "--episodes",
            "2",
            "--seed",
            "7",
            "--max-steps",
            "300",
            "--sandbox",
            "bwrap",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    data = json.loads(completed.stdout)
    assert data["game"] == "Pong" and data["status"] == "ok" and data["backend"] == "bwrap"
    assert [episode["seed"] for episode in data["episodes"]] == [7, 8]
    assert data["lengths"] == [300, 300]
    assert len(data["returns"]) == 2
    assert data["mean_return"] == sum(data["returns"]) / 2
    for episode in data["episodes"]:
        assert set(episode) >= {"seed", "return", "length", "status", "error"}


def test_cli_sandbox_none_warns_loudly(capsys) -> None:
    code = main(
        [
            "evaluate",
            str(PROGRAMS / "pong_tracker.py"),
            "--game",
            "Pong",
            "--episodes",
            "1",
            "--max-steps",
            "20",
            "--sandbox",
            "none",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "WARNING" in captured.err and "host" in captured.err
