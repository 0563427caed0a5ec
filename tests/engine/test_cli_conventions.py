"""What a person expects of any typer/rich CLI, checked on every command there is.

The command list is read from the application itself, so a command added later without help,
an example or `-h` fails here without anyone having to remember this file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer

from engine.cli import app, main
from storage import Store
from tests.storage.factories import PONG_ENV, policy, result

ROOT = Path(__file__).resolve().parents[2]

DATA_COMMANDS = {  # every command that prints data must offer --json
    "check",
    "games",
    "evaluate",
    "run",
    "runs",
    "show",
    "lineage",
    "diff",
    "best",
    "revert",
    "history",
    "log",
    "doctor",
}


def _commands() -> list[tuple[str, Any]]:
    """Every leaf command as ("sandbox build-image", command); a group has `.commands`."""
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, command))

    walk("", typer.main.get_command(app))
    return sorted(found, key=lambda item: item[0])


COMMANDS = _commands()


def test_cli_conventions_command_list_is_complete() -> None:
    names = {name for name, _ in COMMANDS}
    assert names >= DATA_COMMANDS | {"sandbox build-image"}


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_cli_conventions_every_command_has_help_with_an_example(
    name: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*name.split(), flag])
    out = capsys.readouterr().out
    assert code == 0
    assert f"Example: evocade {name}" in out, out


@pytest.mark.parametrize("name", sorted(DATA_COMMANDS))
def test_cli_conventions_every_data_command_has_json(name: str) -> None:
    command = dict(COMMANDS)[name]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert "--json" in options


def test_cli_conventions_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"evocade {metadata.version('evocade')}"


def test_cli_conventions_root_help_short_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    out = capsys.readouterr().out
    assert "--version" in out and "--install-completion" in out and "evaluate" in out


def test_cli_conventions_shell_completion_script() -> None:
    script = Path(sys.executable).with_name("evocade")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]
    done = subprocess.run(
        [*argv, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "_EVOCADE_COMPLETE" in done.stdout and "complete " in done.stdout
    completed = subprocess.run(  # the script asks the CLI itself for candidates
        argv,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={
            "_EVOCADE_COMPLETE": "complete_bash",
            "COMP_WORDS": "evocade his",
            "COMP_CWORD": "1",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert "history" in completed.stdout.split()


@pytest.fixture
def two_programs(tmp_path: Path) -> tuple[Path, str, str, str]:
    db = tmp_path / "evocade.db"
    with Store.open(db) as store:
        run = store.create_run("Pong", PONG_ENV)
        first = store.add_program(run.id, policy(0), origin="seed")
        store.record_evaluation(first.id, result([-21.0]))
        second = store.add_program(run.id, policy(1), parent_id=first.id)
        store.record_evaluation(second.id, result([4.0]))
        store.set_head(run.id, second.id)
    return db, run.id, first.id, second.id


def test_cli_conventions_diff_best_revert_json(
    two_programs: tuple[Path, str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, run, first, second = two_programs
    assert main(["diff", first[:8], second[:8], "--db", str(db), "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert (diff["a"], diff["b"], diff["equal"]) == (first, second, False)
    assert "+    return 1" in diff["diff"]
    assert main(["best", run[:8], "--db", str(db), "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert (best["program_id"], best["mean_return"], best["exported_to"]) == (second, 4.0, None)
    assert main(["revert", run[:8], "--to", first[:8], "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"run_id": run, "from": second, "to": first}


def test_cli_conventions_best_export_refuses_to_overwrite_without_force(
    two_programs: tuple[Path, str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, run, _first, second = two_programs
    target = tmp_path / "mine.py"
    target.write_text("# my own work\n")
    before = db.read_bytes()
    assert main(["best", run, "--db", str(db), "--export", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {target} exists; pass --force to overwrite it\n"
    assert target.read_text() == "# my own work\n" and db.read_bytes() == before
    assert main(["best", run, "--db", str(db), "--export", str(target), "--force"]) == 0
    assert second in target.read_text().splitlines()[0]
    assert main(["best", run, "--db", str(db), "--force"]) == 2
    assert "--force only applies with --export" in capsys.readouterr().err


def test_cli_conventions_run_and_evaluate_take_their_defaults_from_run_config() -> None:
    """RunConfig is the one source of the settings' defaults: an option of `evaluate` that sets
    a RunConfig field defaults to that field's default, and every default `run`'s help names
    is RunConfig's (run's options default to None, so a TOML file can set them)."""
    import re

    from engine.config import RUN_DEFAULTS, SETTING_ALIASES

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    checked = 0
    for param in commands["evaluate"].params:
        field = SETTING_ALIASES.get(param.name, param.name)
        if field in RUN_DEFAULTS and param.default is not None:
            assert param.default == RUN_DEFAULTS[field], param.name
            checked += 1
    assert checked >= 6  # episodes, seed, max-steps, sandbox, act-seconds, memory-mb
    shown = 0
    for param in commands["run"].params:
        field = SETTING_ALIASES.get(param.name, param.name)
        said = re.search(r"\(default ([^);]+)[);]", getattr(param, "help", None) or "")
        if said and field in RUN_DEFAULTS:
            value = RUN_DEFAULTS[field]
            assert said.group(1) == (f"{value:g}" if isinstance(value, float) else str(value))
            shown += 1
    assert shown >= 8
