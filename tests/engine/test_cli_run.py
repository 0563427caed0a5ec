"""`evocade run` through the real entry point: a tiny offline run, resume, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run"], "--game is required"),
        (["run", "--game", "Pongg"], "unknown game"),
        (["run", "--game", "Pong", "--iterations", "0"], "iterations must be at least 1"),
        (["run", "--game", "Pong", "--max-cost", "-1"], "max-cost must be positive"),
        (["run", "--game", "Pong", "--config", "/nonexistent.toml"], "no such config file"),
        (["run", "--resume", "abcdef12"], "no database at"),
    ],
)
def test_cli_run_bad_input_gives_one_line_error(args, expected, tmp_path: Path, capsys) -> None:
    code = main([*args, "--db", str(tmp_path / "run.db")])
    assert code == 2
    assert expected in _one_line_error(capsys)


def test_cli_run_rejects_bad_toml(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("model = [unclosed\n")
    assert (
        main(["run", "--game", "Pong", "--config", str(config), "--db", str(tmp_path / "run.db")])
        == 2
    )
    assert "not valid TOML" in _one_line_error(capsys)


@pytest.mark.bwrap
def test_cli_run_offline_then_resume_with_more_iterations(
    tmp_path: Path, capsys, bwrap_backend
) -> None:
    db = str(tmp_path / "run.db")
    args = ["--db", db, "--json"]
    assert (
        main(
            [
                "run",
                "--game",
                "pong",
                "--iterations",
                "1",
                "--episodes",
                "1",
                "--max-steps",
                "300",
                "--sandbox",
                "bwrap",
                *args,
            ]
        )
        == 0
    )
    first = json.loads(capsys.readouterr().out)
    assert first["reason"] == "iterations" and first["iterations"] == 1

    assert main(["run", "--resume", first["run_id"][:8], "--iterations", "2", *args]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["run_id"] == first["run_id"] and second["iterations"] == 2

    assert main(["history", first["run_id"][:8], "--db", db, "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert len(history) >= 2  # the seed and at least one distinct mutant
