"""`evocade run` through the real entry point: a tiny offline run, resume, and bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from engine.cli import main
from storage import Store
from storage.models import RunStatus


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
    with Store.open(db) as store:
        resumed = [e for e in store.events(first["run_id"]) if e.kind == "run_resumed"]
        assert [(e.data or {})["config_changed"] for e in resumed] == [{"iterations": [1, 2]}]
        assert resumed[0].message == "resumed (iterations 1 -> 2)"
        assert store.get_run(first["run_id"]).config["iterations"] == 1  # the row as created

    assert main(["history", first["run_id"][:8], "--db", db, "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert len(history) >= 2  # the seed and at least one distinct mutant


@pytest.mark.bwrap
def test_cli_run_plain_resume_keeps_the_budget_an_earlier_resume_raised(
    tmp_path: Path, capsys, bwrap_backend
) -> None:
    """A supervisor restarting a killed run with the same `--resume RUN` goes on to the budget
    the last resume raised, not the one the run was created with."""
    db = str(tmp_path / "run.db")
    run = ["run", "--game", "Pong", *SHORT_RUN, "--sandbox", "bwrap", "--db", db, "--json"]
    assert main([*run, "--iterations", "1"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    with Store.open(db) as store:  # as a resume to 3 killed (-9) before it decided any
        store.set_status(run_id, "running", "resumed", config_changed={"iterations": (1, 3)})
    assert main(["run", "--resume", run_id[:8], "--db", db, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["iterations"] == 3, err
    assert f"resuming run {run_id[:8]} at iteration 2 (1 decided" in err


REJECTED_SEED = "def act(obs):\n    import os\n    return 0\n"


@pytest.mark.parametrize(
    ("toml", "files", "expected"),
    [
        ("iteratons = 2\n", {}, "unknown setting 'iteratons' (did you mean 'iterations'?)"),
        ('iterations = "2"\n', {}, "setting 'iterations' must be an integer"),
        ('sandbox = "bwarp"\n', {}, "setting 'sandbox' must be one of"),
        (
            "",
            {"seed.py": REJECTED_SEED},
            "the seed program is rejected by the checker: SEED:2:5: import-not-allowed: ",
        ),
        ("", {"seed.py": "  \n"}, "is empty"),
        ('model = "m"\nbase_url = "ftp://x"\n', {}, "base-url must start with http://"),
        ("max_steps = 30.5\n", {}, "setting 'max_steps' must be an integer, got 30.5"),
        ("episodes = [1, 2]\n", {}, "setting 'episodes' must be an integer, got [1, 2]"),
        ("iterations = true\n", {}, "setting 'iterations' must be an integer, got True"),
        ('deterministic = "yes"\n', {}, "setting 'deterministic' must be true or false"),
        # an integer where a number is wanted is fine: the next setting is what is refused
        ("max_cost = 5\nmax_time = -1\n", {}, "--max-time must be positive (got -1)"),
        # the ranges `evaluate` checks, from the same RunConfig.validate (pydantic's traceback
        # from Limits before)
        ("memory_mb = 16\n", {}, "--memory-mb must be between 32 and 1024 MB"),
        ("act_seconds = 0\n", {}, "--act-seconds must be more than 0 and at most 600 seconds"),
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
    assert expected.replace("SEED", str(tmp_path / "seed.py")) in _one_line_error(capsys)
    assert not (tmp_path / "run.db").exists()  # bad input stores nothing


@pytest.mark.parametrize("kind", ["directory", "path through a file", "unreadable"])
def test_cli_run_unreadable_config_file_is_one_line(kind: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.toml"
    if kind == "directory":
        path.mkdir()
        expected = f"error: the config file {path} is a directory: give a TOML file"
    elif kind == "path through a file":
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "run.toml"
        expected = f"error: cannot read the config file {path}: Not a directory"
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads a file whatever its mode")
        path.write_text("iterations = 1\n")
        path.chmod(0)
        expected = f"error: cannot read the config file {path}: Permission denied"
    db = tmp_path / "run.db"
    assert main(["run", "--game", "Pong", "--config", str(path), "--db", str(db)]) == 2
    assert _one_line_error(capsys) == expected
    assert not db.exists()


NO_DOCKER = "unix:///nonexistent/docker.sock"
NO_BACKEND = "error: no sandbox backend: --sandbox docker: no Docker engine answers at " + NO_DOCKER


def test_cli_run_without_a_sandbox_backend_stores_nothing(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend is opened before the run row is created: no Docker engine is one line and
    exit 1 (the machine is not ready; the input was fine), and no database appears."""
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    db = tmp_path / "run.db"
    assert main(["run", "--game", "Pong", "--sandbox", "docker", "--db", str(db)]) == 1
    assert _one_line_error(capsys).startswith(NO_BACKEND)
    config = tmp_path / "run.toml"
    config.write_text('sandbox = "docker"\n')
    assert main(["run", "--game", "Pong", "--config", str(config), "--db", str(db)]) == 1
    assert _one_line_error(capsys).startswith(NO_BACKEND)
    assert not db.exists()


def test_cli_run_resume_without_its_backend_leaves_the_run_resumable(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.config import RunConfig
    from storage import Store

    db = str(tmp_path / "run.db")
    config = RunConfig(game="Pong", sandbox="docker", iterations=3)
    with Store.open(db) as store:
        run = store.create_run("Pong", config.full_env().model_dump(), config.to_json())
        store.set_status(run.id, "stopped", "received SIGINT")
        before = ([e.kind for e in store.events(run.id)], store.get_run(run.id).status)
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    for more in ([], ["--iterations", "5"]):
        assert main(["run", "--resume", run.id[:8], *more, "--db", db]) == 1
        assert _one_line_error(capsys).startswith(NO_BACKEND)
    with Store.open(db) as store:
        after = ([e.kind for e in store.events(run.id)], store.get_run(run.id).status)
    assert after == before == (["run_started", "run_stopped"], "stopped")


SHORT_RUN = ["--episodes", "1", "--max-steps", "150", "--holdout-episodes", "0"]


@pytest.mark.bwrap
def test_cli_run_resume_names_the_next_iteration_and_refuses_to_do_nothing(
    tmp_path: Path, capsys, bwrap_backend
) -> None:
    """The resume line names the first iteration it runs (the next `iter` line's number); a
    resume with every iteration already decided is refused whatever the run's status, with
    nothing appended; a seed program with a UTF-8 BOM (an editor's) is accepted."""
    from storage import Store

    seed = tmp_path / "seed.py"
    seed.write_text(
        "\ufeffdef act(obs):\n    return 2 if obs.get('Ball') else 0\n", encoding="utf-8"
    )
    db = str(tmp_path / "run.db")
    first = ["run", "--game", "Pong", *SHORT_RUN, "--concurrency", "1", "--sandbox", "bwrap"]
    assert main([*first, "--iterations", "2", "--seed-program", str(seed), "--db", db]) == 0
    capsys.readouterr()
    with Store.open(db) as store:
        (run,) = store.runs()
        (stored_seed,) = [p for p in store.history(run.run_id) if p.origin == "seed"]
        assert store.get_program(stored_seed.program_id).source.startswith("def act(obs):")
    short = run.run_id[:8]

    assert main(["run", "--resume", short, "--iterations", "3", "--db", db]) == 0
    err = capsys.readouterr().err
    (resumed,) = [line for line in err.splitlines() if line.startswith("resuming run")]
    assert resumed.startswith(f"resuming run {short} at iteration 3 (2 decided, "), err
    assert [line.split()[1] for line in err.splitlines() if line.startswith("iter ")] == ["3"]

    go_on = "give --iterations N with N above 3 to go on"
    # running, with the lease's holder gone: a process killed with -9, shown as interrupted
    cases: tuple[tuple[RunStatus, str], ...] = (
        ("failed", "failed"),
        ("stopped", "stopped"),
        ("running", "interrupted"),
    )
    for status, shown in cases:
        with Store.open(db) as store:
            store.set_status(run.run_id, status, "set by the test")
            events = len(store.events(run.run_id))
        assert main(["run", "--resume", short, "--db", db]) == 2
        assert _one_line_error(capsys) == (
            f"error: run {short} ({shown}) has all its 3 iterations decided: {go_on}"
        )
        assert main(["run", "--resume", short, "--iterations", "2", "--db", db]) == 2
        assert (
            _one_line_error(capsys)
            == f"error: run {short} has already decided 3 iterations: {go_on}"
        )
        with Store.open(db) as store:
            assert len(store.events(run.run_id)) == events  # nothing appended
            assert store.get_run(run.run_id).status == status


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
    for changed in (["--episodes", "3"], ["--max-steps", "99"], ["--deterministic"]):
        assert main([*resume, *changed, "--iterations", "5"]) == 2
        assert f"drop {changed[0]} (only budgets" in _one_line_error(capsys)
    assert main([*resume, "--model", "m", "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "drop --model, --base-url (only budgets" in _one_line_error(capsys)
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


class _Lines:
    """A subprocess's stderr, read line by line on a thread, waited on for a line."""

    def __init__(self, stream) -> None:
        import queue
        import threading

        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, start: str, timeout: float = 600.0) -> str:
        import queue

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(start):
                return line
        raise AssertionError(f"no line starting {start!r}; saw: {self.seen}")

    def rest(self) -> str:
        self._thread.join(60)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.seen.append(line)
        return "\n".join(self.seen)


# Every proposal spins in act(): with act() allowed 600 s, a candidate's first episode only
# ends when the sandbox's CPU limit (300 CPU-s) cuts it, so "finishing the candidates in flight"
# cannot happen by itself while the test looks.
SPINNER = "def act(obs):\n    while True:\n        pass\n"


def _llm_programs_evaluated(db: Path, run_id: str) -> int:
    from storage import Store

    with Store.open(db) as store:
        llm = {p.program_id for p in store.history(run_id) if p.origin == "llm"}
        return sum(e.program_id in llm for e in store.run_evaluations(run_id))


def _wait_for_llm_program(db: Path, count: int) -> str:
    from storage import Store

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if db.exists():
            with Store.open(db) as store:
                runs = store.runs()
                if runs and sum(p.origin == "llm" for p in store.history(runs[0].run_id)) >= count:
                    return runs[0].run_id
        time.sleep(0.2)
    raise AssertionError(f"no {count} proposed program(s) within 600 s")


@pytest.mark.bwrap
def test_cli_run_second_ctrl_c_abandons_and_a_second_resume_is_refused(
    tmp_path: Path, capsys, scripted_llm, bwrap_backend
) -> None:
    """First SIGINT: "stopping: finishing N candidate(s)"; a second one abandons them (exit
    130, what they were playing not recorded, `--resume` plays them again). While that resume
    drives the run, another `--resume` of it is refused in one line, exit 2, nothing appended."""
    import signal
    import subprocess

    from storage import Store
    from tests.engine.scripted_llm import Answer

    llm = scripted_llm(when_empty=Answer(SPINNER))
    config = tmp_path / "run.toml"
    config.write_text("act_seconds = 600.0\n")
    db = tmp_path / "run.db"
    argv = _console("run", "--game", "Pong", *SHORT_RUN, "--iterations", "50", "--model", "m")
    argv += ["--base-url", llm.base_url, "--sandbox", "bwrap", "--config", str(config)]
    argv += ["--db", str(db)]
    env = {**os.environ, "OPENAI_API_KEY": "test"}

    def start(args: list[str]) -> tuple[subprocess.Popen[str], _Lines]:
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        return process, _Lines(process.stderr)

    def stop_twice(process: subprocess.Popen[str], lines: _Lines) -> str:
        process.send_signal(signal.SIGINT)
        stopping = lines.wait_for("stopping: finishing ")
        assert "candidate(s) in flight (again to abandon them" in stopping
        process.send_signal(signal.SIGINT)
        out = process.communicate(timeout=600)[0]
        err = lines.rest()
        assert process.returncode == 130, err
        assert "stopped: received SIGINT" in out and "Traceback" not in err
        return err

    process, lines = start(argv)
    try:
        lines.wait_for("seed program ")  # a progress line: the run is under way
        run_id = _wait_for_llm_program(db, 1)  # ... and a spinning candidate is in flight
        stop_twice(process, lines)
    finally:
        process.kill()
    assert _llm_programs_evaluated(db, run_id) == 0  # abandoned: nothing of theirs recorded

    resumer, lines = start(_console("run", "--resume", run_id[:8], "--db", str(db)))
    try:
        resumed = lines.wait_for("resuming run ")
        assert " in flight" in resumed and " 0 in flight" not in resumed, resumed
        with Store.open(db) as store:
            kinds = [e.kind for e in store.events(run_id)]
        assert main(["run", "--resume", run_id[:8], "--iterations", "60", "--db", str(db)]) == 2
        assert "is being driven by another process (pid " in _one_line_error(capsys)
        with Store.open(db) as store:
            after = [e.kind for e in store.events(run_id)]
        assert after[: len(kinds)] == kinds
        assert after.count("run_resumed") == kinds.count("run_resumed") == 1
        stop_twice(resumer, lines)
    finally:
        resumer.kill()


@pytest.mark.bwrap
def test_cli_run_live_progress_on_a_terminal(tmp_path: Path, bwrap_backend) -> None:
    """With stderr on a terminal the progress is a rich table (LiveReporter); the outcome line
    still goes to stdout."""
    from tests.engine.terminal import run_on_a_terminal

    argv = _console("run", "--game", "Pong", *SHORT_RUN, "--iterations", "2", "--sandbox")
    argv += ["bwrap", "--db", str(tmp_path / "run.db")]
    code, out, shown = run_on_a_terminal(argv, {**os.environ, "COLUMNS": "120"}, 600)
    assert code == 0, shown
    assert ": iterations; best program " in out
    assert b"evocade run" in shown and b"2 / 2" in shown and b"Traceback" not in shown
    assert b"iter    1" not in shown  # the table, not the plain lines
