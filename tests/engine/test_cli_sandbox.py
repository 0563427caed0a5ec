"""`evocade check / evaluate / games` through the real entry point: exit codes and messages."""

from __future__ import annotations

import json
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
            "--episodes must be at least 1",
        ),
        (
            ["evaluate", str(PROGRAMS / "pong_tracker.py"), "--game", "Pong", "--episodes", "x"],
            "--episodes",
        ),
        (["evaluate", str(PROGRAMS / "pong_tracker.py")], "--game"),
        (["evaluate", str(PROGRAMS), "--game", "Pong"], "is a directory"),
        (["check", "/nonexistent/policy.py"], "no such file"),
    ],
)
def test_cli_bad_input_gives_one_line_error(args, expected, capsys) -> None:
    code = main(args)
    assert code == 2
    assert expected in _one_line_error(capsys)


def test_cli_evaluate_syntax_error_is_rejected_in_one_line(tmp_path: Path, capsys) -> None:
    policy = tmp_path / "broken.py"
    policy.write_text("def act(obs)\n    return 0\n")
    code = main(["evaluate", str(policy), "--game", "Pong", "--sandbox", "none"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 1
    assert len(out) == 1
    assert "rejected" in out[0] and "line 1" in out[0]


def test_cli_check_exit_codes_and_json(tmp_path: Path, capsys) -> None:
    assert main(["check", str(PROGRAMS / "pong_tracker.py")]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef act(obs):\n    return open('/etc/passwd')\n")
    assert main(["check", str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    rules = {d["rule"] for d in report["diagnostics"]}
    assert "import-not-allowed" in rules
    assert all(d["line"] >= 1 for d in report["diagnostics"])


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
