"""`evocade evaluate`: bad values, an honest report, escaped policy text, progress, Ctrl-C.

The end-to-end tests play real episodes in the real sandbox; the Ctrl-C tests run the console
script in a subprocess and send it a real SIGINT. No outcome depends on timing margins: a
policy that never returns from act() would keep an evaluation busy for minutes, and the tests
wait for conditions (a sandbox started, the process gone) with generous deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cli import main
from engine.cli_evaluate import json_result, render_result
from sandbox.results import EpisodeResult, EvaluationResult, Status
from sandbox.settings import EnvSettings, Limits
from tests.conftest import PROGRAMS, backend_or_skip
from tests.engine.terminal import run_on_a_terminal

ROOT = Path(__file__).resolve().parents[2]
TRACKER = str(PROGRAMS / "pong_tracker.py")
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")

# Prints hostile text at its first step, plays NOOP (Pong's opponent scores around step 180),
# then raises an exception whose message would clear the screen, write the clipboard and forge
# a score line if it reached the terminal raw.
HOSTILE_POLICY = """
steps = 0


def act(obs):
    global steps
    steps += 1
    if steps == 1:
        print("hello \\x1b]0;owned title\\x07 from \\u202eevil policy")
    if steps > 260:
        raise Exception("\\x1b[2J\\x1b]52;c;ZWNobyBvd25lZA==\\x07 status ok, mean return 21.00")
    return 0
"""

SPINS = "def act(obs):\n    while True:\n        pass\n"


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--seed", "-1"], "error: --seed must be 0 or more (seeds S..S+N-1 are used) (got -1)"),
        (["--workers", "0"], "error: --workers must be at least 1 (got 0)"),
        (["--workers", "-2"], "error: --workers must be at least 1 (got -2)"),
        (
            ["--act-seconds", "0"],
            "error: --act-seconds must be more than 0 and at most 600 seconds (got 0)",
        ),
        (
            ["--act-seconds", "601"],
            "error: --act-seconds must be more than 0 and at most 600 seconds (got 601)",
        ),
        (
            ["--memory-mb", "16"],
            "error: --memory-mb must be between 32 and 1024 MB (the sandbox's own limit) (got 16)",
        ),
        (
            ["--memory-mb", "4096"],
            "error: --memory-mb must be between 32 and 1024 MB (the sandbox's own limit) "
            "(got 4096)",
        ),
        (["--episodes", "0"], "error: --episodes must be at least 1 (got 0)"),
        (["--max-steps", "0"], "error: --max-steps must be at least 1 (got 0)"),
        (
            ["--repeat-action-probability", "1.5"],
            "error: --repeat-action-probability must be between 0 and 1 (got 1.5)",
        ),
    ],
)
def test_cli_evaluate_bad_value_exits_2_before_anything_runs(
    extra: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Were any backend built first, the message would be about this unreachable engine.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code = main(["evaluate", TRACKER, "--game", "Pong", "--sandbox", "docker", *extra])
    assert code == 2
    assert _one_line_error(capsys) == expected


def test_cli_evaluate_without_a_sandbox_backend_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same code and line as `run` gives: the machine is not ready, the input was fine."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code = main(["evaluate", TRACKER, "--game", "Pong", "--sandbox", "docker"])
    assert code == 1
    assert _one_line_error(capsys).startswith(
        "error: no sandbox backend: --sandbox docker: no Docker engine answers at "
        "unix:///nonexistent/docker.sock"
    )


@pytest.mark.bwrap
def test_cli_evaluate_accepts_a_utf8_bom(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bwrap_backend
) -> None:
    policy = tmp_path / "bom.py"
    policy.write_text("\ufeff" + Path(TRACKER).read_text(), encoding="utf-8")
    args = ["evaluate", str(policy), "-g", "Pong", "--episodes", "1", "--max-steps", "30"]
    assert main([*args, "--sandbox", "bwrap", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "ok"


def _episode(
    seed: int, status: Status, value: float, length: int, **extra: object
) -> EpisodeResult:
    return EpisodeResult.model_validate(
        {"seed": seed, "status": status, "return": value, "length": length, "wall_seconds": 1.0}
        | extra
    )


def _result(episodes: list[EpisodeResult], max_steps: int = 1000) -> EvaluationResult:
    from sandbox.results import worst

    return EvaluationResult(
        game="Pong",
        env=EnvSettings(max_steps=max_steps),
        limits=Limits(),
        backend="bwrap",
        checked=True,
        status=worst([e.status for e in episodes]),
        episodes=episodes,
        wall_seconds=3.0,
    )


def test_cli_evaluate_report_never_counts_failed_episodes_in_the_score() -> None:
    """A policy that scores and then raises must not look like a score."""
    result = _result(
        [
            _episode(0, Status.OK, -21.0, 900),
            _episode(1, Status.ERROR, 15.0, 400, error="Traceback ...\nValueError: quit"),
        ]
    )
    lines = render_result("p.py", result).splitlines()
    status_at = next(i for i, line in enumerate(lines) if line.startswith("status error:"))
    mean_at = next(i for i, line in enumerate(lines) if "mean return" in line)
    assert status_at < mean_at  # the failure is said before any mean
    assert "1 of 2 episodes failed (seed 1 error)" in lines[status_at]
    assert lines[mean_at].startswith("mean return -21.00 over the 1 ok episode only")
    assert "not counted" in lines[mean_at]
    assert "-3.00" not in "\n".join(lines)  # the mean of all returns appears nowhere
    assert not any(line.startswith("status ok") for line in lines)


def test_cli_evaluate_json_mean_is_over_ok_episodes_and_says_how_many_failed() -> None:
    """`--json` gives the same score as the text report: a script reading `mean_return` never
    gets a mean that includes a failed episode's partial return."""
    result = _result(
        [
            _episode(0, Status.OK, -21.0, 900),
            _episode(1, Status.ERROR, 15.0, 400, error="Traceback ...\nValueError: quit"),
            _episode(2, Status.OK, -19.0, 900),
        ]
    )
    data = json.loads(json.dumps(json_result(result)))
    assert data["mean_return"] == data["mean_return_ok"] == -20.0  # not (-21 + 15 - 19) / 3
    assert (data["episodes_ok"], data["episodes_failed"]) == (2, 1)
    assert data["returns"] == [-21.0, 15.0, -19.0] and data["status"] == "error"
    only_failed = json_result(_result([_episode(0, Status.TIMEOUT, 3.0, 10)]))
    assert only_failed["mean_return"] is None and only_failed["episodes_failed"] == 1


def test_cli_evaluate_report_flags_step_capped_episodes() -> None:
    capped = _episode(0, Status.OK, -3.0, 300, step_capped=True)  # the harness says so
    result = _result([capped, _episode(1, Status.OK, -5.0, 120)], 300)
    text = render_result("p.py", result)
    seed0, seed1 = (line for line in text.splitlines() if line.lstrip().startswith("seed "))
    assert "cut at the step cap" in seed0 and "cut at the step cap" not in seed1
    assert "note: 1 of 2 episodes stopped at the step cap (--max-steps 300)" in text
    assert "status ok: mean return -4.00 over 2 episodes" in text


@pytest.mark.bwrap
def test_cli_evaluate_hostile_policy_text_is_escaped_and_not_a_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bwrap_backend
) -> None:
    policy = tmp_path / "hostile.py"
    policy.write_text(HOSTILE_POLICY)
    args = ["evaluate", str(policy), "-g", "Pong", "--episodes", "2", "--max-steps", "2000"]
    code = main([*args, "--sandbox", "bwrap"])
    captured = capsys.readouterr()
    assert code == 1
    for stream in (captured.out, captured.err):
        for raw in RAW_CONTROLS:
            assert raw not in stream
    out = captured.out
    assert "\\x1b[2J\\x1b]52;c;ZWNobyBvd25lZA==\\x07 status ok, mean return 21.00" in out
    assert "| hello \\x1b]0;owned title\\x07 from \\u202eevil policy" in out  # print() shown
    lines = out.splitlines()
    assert not any(line.startswith("status ok") for line in lines)
    assert lines[-2].startswith("status error: 2 of 2 episodes failed")
    assert lines[-1].startswith("no score: no episode ended ok")
    assert "episode 2/2 done" in captured.err  # progress, one line per episode (not a tty)

    assert main([*args, "--sandbox", "bwrap", "--json"]) == 1
    raw_json = capsys.readouterr().out
    for raw in RAW_CONTROLS:
        assert raw not in raw_json
    data = json.loads(raw_json)
    assert data["status"] == "error" and data["mean_return_ok"] is None
    assert data["mean_return"] is None and data["episodes_failed"] == 2
    assert "status ok, mean return 21.00" in data["episodes"][0]["error"]


@pytest.mark.bwrap
def test_cli_evaluate_flags_step_cap_end_to_end(
    capsys: pytest.CaptureFixture[str], bwrap_backend
) -> None:
    args = ["evaluate", TRACKER, "-g", "Pong", "--episodes", "1", "--max-steps", "40"]
    assert main([*args, "--sandbox", "bwrap"]) == 0
    out = capsys.readouterr().out
    assert "steps     40  (cut at the step cap)" in out
    assert "note: 1 of 1 episode stopped at the step cap (--max-steps 40)" in out
    assert main([*args, "--sandbox", "bwrap", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"][0]["step_capped"] is True


def _console(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("evocade")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "engine.cli", *args]


def _wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {seconds:g} s waiting for {what}")
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` (what the CLI started there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == directory:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _ignore_sigint() -> None:
    # What a shell does to a job started with `&` in a script: SIGINT arrives ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupt_evaluation(tmp_path: Path, sandbox: str) -> tuple[int, str, str, int]:
    """Start an evaluation that would run for minutes, SIGINT it once a sandbox is up."""
    policy = tmp_path / "spins.py"
    policy.write_text(SPINS)
    work = tmp_path / "cwd"
    work.mkdir()
    process = subprocess.Popen(
        _console(
            "evaluate",
            str(policy),
            "-g",
            "Pong",
            "--episodes",
            "2",
            "--act-seconds",
            "600",
            "--sandbox",
            sandbox,
        ),
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=_ignore_sigint,
    )
    try:
        if sandbox == "docker":
            _wait_for(lambda: _containers_of(process.pid), 180, "a container to start")
        else:
            _wait_for(lambda: _children(process.pid), 180, "a sandbox to start")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=90)  # the evaluation alone would take >= 300 s
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    _wait_for(lambda: not _processes_in(work), 60, "the sandboxes to be gone")
    return process.returncode, out, err, process.pid


@pytest.mark.bwrap
def test_cli_evaluate_sigint_stops_within_seconds_with_130(tmp_path: Path, bwrap_backend) -> None:
    code, out, err, _ = _interrupt_evaluation(tmp_path, "bwrap")
    assert code == 130, err
    assert out == ""  # nothing that looks like a result
    assert err.strip().splitlines()[-1].startswith("interrupted: stopped ")
    assert "Traceback" not in err


def test_cli_evaluate_sigint_on_host_backend_kills_the_harness(tmp_path: Path) -> None:
    code, out, err, _ = _interrupt_evaluation(tmp_path, "none")
    assert code == 130, err
    assert out == "" and "Traceback" not in err


def _containers_of(pid: int) -> list[str]:
    import docker

    client = docker.from_env(timeout=10)
    try:
        found = client.api.containers(filters={"label": [f"evocade.pid={pid}"]})
        return [info["Id"] for info in found]
    finally:
        client.close()


@pytest.mark.docker
def test_cli_evaluate_sigint_kills_docker_sandboxes(tmp_path: Path) -> None:
    backend_or_skip("docker")
    code, _out, err, pid = _interrupt_evaluation(tmp_path, "docker")
    assert code == 130, err
    _wait_for(lambda: not _containers_of(pid), 60, "the containers to be removed")


@pytest.mark.bwrap
def test_cli_evaluate_live_progress_on_a_terminal(bwrap_backend) -> None:
    """With stderr on a terminal the progress is a rich bar; the report still goes to stdout."""
    code, out, shown = run_on_a_terminal(
        _console(
            "evaluate",
            TRACKER,
            "-g",
            "Pong",
            "--episodes",
            "2",
            "--max-steps",
            "30",
            "--sandbox",
            "bwrap",
        ),
        {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"},
        300,
    )
    assert code == 0, shown
    assert "status ok: mean return" in out
    assert b"episodes" in shown and b"Traceback" not in shown
