"""`evocade run` through the real entry point: a tiny offline run, resume, and bad input."""

from __future__ import annotations

import json
import os
import time
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


REJECTED_SEED = "def act(obs):\n    import os\n    return 0\n"


@pytest.mark.parametrize(
    ("toml", "files", "expected"),
    [
        ("iteratons = 2\n", {}, "unknown setting 'iteratons' (did you mean 'iterations'?)"),
        ('iterations = "2"\n', {}, "setting 'iterations' must be an integer"),
        ('sandbox = "bwarp"\n', {}, "setting 'sandbox' must be one of"),
        ("", {"seed.py": REJECTED_SEED}, "rejected by the checker: line 2: import-not-allowed"),
        ("", {"seed.py": "  \n"}, "is empty"),
        ('model = "m"\nbase_url = "ftp://x"\n', {}, "base-url must start with http://"),
    ],
)
def test_cli_run_refuses_bad_settings_before_creating_anything(
    toml: str, files: dict[str, str], expected: str, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "run.toml"
    config.write_text(toml)
    args = ["run", "--game", "Pong", "--config", str(config), "--db", str(tmp_path / "run.db")]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        args += ["--seed-program", str(tmp_path / name)]
    assert main(args) == 2
    assert expected in _one_line_error(capsys)
    assert not (tmp_path / "run.db").exists()  # bad input stores nothing


SHORT_RUN = ["--episodes", "1", "--max-steps", "150", "--holdout-episodes", "0"]


@pytest.mark.bwrap
def test_cli_run_toml_settings_take_effect_and_resume_refuses_changes(
    tmp_path: Path, capsys, bwrap_backend
) -> None:
    from storage import Store

    config = tmp_path / "run.toml"
    config.write_text('sandbox = "bwrap"\niterations = 1\nislands = 2\n')
    db = str(tmp_path / "run.db")
    assert main(["run", "--game", "Pong", "--config", str(config), *SHORT_RUN, "--db", db]) == 0
    capsys.readouterr()
    with Store.open(db) as store:
        (run,) = store.runs()
        stored = store.get_run(run.run_id).config
        events_before = len(store.events(run.run_id))
    assert stored["sandbox"] == "bwrap" and stored["islands"] == 2  # the file's, not defaults

    resume = ["run", "--resume", run.run_id[:8], "--db", db]
    assert main([*resume, "--episodes", "3"]) == 2
    assert "drop --episodes" in _one_line_error(capsys)
    assert main(resume) == 2  # finished, and no more iterations asked for
    assert "is finished (1 iterations): give --iterations N" in _one_line_error(capsys)
    with Store.open(db) as store:
        assert len(store.events(run.run_id)) == events_before  # nothing appended


@pytest.mark.bwrap
def test_cli_run_dead_llm_endpoint_fails_the_run(tmp_path: Path, capsys, bwrap_backend) -> None:
    import socket

    from storage import Store

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = str(tmp_path / "run.db")
    args = ["run", "--game", "Pong", "--model", "m", "--base-url", f"http://127.0.0.1:{port}/v1"]
    args += [*SHORT_RUN, "--llm-retries", "0", "--iterations", "20", "--sandbox", "bwrap"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "test")
        assert main([*args, "--db", db]) == 1
    out = capsys.readouterr().out
    assert "failed: the LLM endpoint answered none of the last 3 proposals" in out
    with Store.open(db) as store:
        (run,) = store.runs()
        assert run.status == "failed"
        assert all(call.error for call in store.llm_calls(run.run_id))


def _console(*args: str) -> list[str]:
    import sys

    script = Path(sys.executable).with_name("evocade")
    return [str(script), *args]


def _wait_for_iterations(db: Path, count: int) -> None:
    from storage import Store

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if db.exists():
            with Store.open(db) as store:
                runs = store.runs()
                events = store.events(runs[0].run_id) if runs else []
                if sum(e.kind == "iteration" for e in events) >= count:
                    return
        time.sleep(0.2)
    raise AssertionError(f"no {count} iterations within 600 s")


@pytest.mark.bwrap
def test_cli_run_ctrl_c_at_a_terminal_finishes_the_episodes_in_flight(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole foreground process group: the fork server and the
    policy zygote too. They must not die of it (they end when the run closes them), or every
    episode in flight, and every one still to be played for the candidates in flight, would
    be recorded `crashed`."""
    import signal
    import subprocess

    from storage import Store

    db = tmp_path / "run.db"
    argv = _console("run", "--game", "Pong", *SHORT_RUN, "--iterations", "500")
    argv += ["--sandbox", "bwrap", "--db", str(db)]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    _wait_for_iterations(db, 1)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    assert "stopped: received SIGINT" in out and "Traceback" not in err
    with Store.open(db) as store:
        (run,) = store.runs()
        statuses = [e.status for e in store.run_evaluations(run.run_id)]
    assert statuses and "crashed" not in statuses, statuses


@pytest.mark.bwrap
def test_cli_run_sigint_exits_130_and_kill_9_shows_interrupted(
    tmp_path: Path, capsys, bwrap_backend
) -> None:
    import signal
    import subprocess

    db = tmp_path / "run.db"
    argv = _console("run", "--game", "Pong", *SHORT_RUN, "--iterations", "500")
    argv += ["--sandbox", "bwrap", "--db", str(db)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_iterations(db, 1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    assert "stopped: received SIGINT" in out and "Traceback" not in err

    victim = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_iterations(db, 1)  # the first run's iterations count: wait for the second's
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert main(["runs", "--db", str(db), "--json"]) == 0
            listed = json.loads(capsys.readouterr().out)
            if len(listed) == 2 and listed[1]["programs"] >= 2:
                break
            time.sleep(0.2)
    finally:
        victim.kill()
        victim.wait()
    assert main(["runs", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [run["interrupted"] for run in listed] == [False, True]
    assert listed[1]["status"] == "running"  # stored as it was; shown as interrupted
    assert main(["runs", "--db", str(db)]) == 0
    assert "interrupted" in capsys.readouterr().out
