"""Soak: `evocade run` against a chaos LLM server, killed at random moments and resumed.

Drives the real command line (`evocade run ...`, then `evocade run --resume RUN ...` after
every stop) as a subprocess, so it measures whatever loop the CLI runs, today's or a rewrite.
The chaos server (`tests/engine/chaos_llm.py`, 127.0.0.1 only) answers with 429s, 5xx, bad
JSON, bodies cut mid-way, hangs, 5 MB replies, list/number/null content, syntax errors and
hostile programs. Most processes get `kill -9` at a random moment; some get SIGTERM instead
(the time to exit is measured); the rest run until the iteration target. After each one:
SQLite's quick_check, and a count of processes of its session left behind (then killed).

Prints iterations per minute, RSS of each `evocade run` process over its life, database
bytes per iteration, LLM calls served by the server vs recorded in `llm_call`, integrity,
exit codes and tracebacks. Asserts nothing.

    python benchmarks/soak.py --iterations 40                     # temporary database
    python benchmarks/soak.py --iterations 1000 --db soak.db --seed 7

Iterations are counted from the run's `iteration` events (or, if a loop writes none, its
programs minus the seed). Served > recorded is expected for calls in flight at a kill -9 (and,
with a loop that records calls only after the whole retry chain, for every call of a killed
iteration); recorded > served for attempts cancelled before they reached the server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soak_report import (  # noqa: E402  (a sibling script: its directory is on sys.path)
    Process,
    Totals,
    db_bytes,
    iterations_in,
    process_line,
    quick_check,
    report,
    run_id_in,
)

from tests.engine.chaos_llm import ChaosLLM  # noqa: E402

SAMPLE_SECONDS = 0.5
TERM_DEADLINE_SECONDS = 600.0  # after SIGTERM, kill -9 if it is still running by then
LINGER_SECONDS = 5.0  # for what a stopped process leaves to end on its own


def main() -> None:
    args = _parse()
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="evocade-soak-"))
    db = Path(args.db).absolute() if args.db else workdir / "soak.db"
    chaos = ChaosLLM(
        seed=args.seed,
        hang_seconds=args.hang_seconds,
        retry_after_seconds=1.0,
        lifetime_seconds=args.max_hours * 3600 + 600,
    ).start()
    totals = Totals()
    started = time.monotonic()
    deadline = started + args.max_hours * 3600
    try:
        while time.monotonic() < deadline:
            run_id = run_id_in(db)
            done = iterations_in(db, run_id)
            if done >= args.iterations:
                break
            process = _one_process(args, rng, db, run_id, chaos.base_url, len(totals.processes))
            totals.processes.append(process)
            run_id = run_id_in(db)
            totals.iterations_over_time.append(
                (time.monotonic() - started, iterations_in(db, run_id), db_bytes(db))
            )
            print(process_line(process, totals.iterations_over_time[-1][1]), flush=True)
    finally:
        served, kinds = chaos.served, chaos.counts()
        chaos.stop()
    wall = time.monotonic() - started
    report(args, db, totals, wall, served, kinds)
    if args.db is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40, help="iterations to reach")
    parser.add_argument("--seed", type=int, default=1, help="chaos and kill schedule seed")
    parser.add_argument("--db", help="SQLite file to use (default: a temporary one)")
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--max-steps", type=int, default=200, help="step cap per episode")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--kill-fraction", type=float, default=0.7, help="processes kill -9'd")
    parser.add_argument("--term-fraction", type=float, default=0.15, help="processes SIGTERM'd")
    parser.add_argument("--kill-after", type=float, nargs=2, default=(3.0, 40.0), metavar="S")
    parser.add_argument("--hang-seconds", type=float, default=5.0, help="chaos hang length")
    parser.add_argument("--max-hours", type=float, default=12.0, help="stop the soak anyway")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database")
    return parser.parse_args()


def _one_process(
    args: argparse.Namespace,
    rng: random.Random,
    db: Path,
    run_id: str | None,
    base_url: str,
    number: int,
) -> Process:
    """Start one `evocade run` (new, or resuming `run_id`), stop it as planned, and say how it
    went: exit code, SIGTERM-to-exit time, traceback, last error, leftovers, integrity."""
    command = _command(args, db, run_id, base_url)
    roll = rng.random()
    planned = (
        "kill"
        if roll < args.kill_fraction
        else "term"
        if roll < args.kill_fraction + args.term_fraction
        else "finish"
    )
    stop_after = rng.uniform(*args.kill_after)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENAI_API_KEY": "soak-key"}
    stderr_path = db.with_name(f"{db.name}.stderr")
    process = Process(number, "new" if run_id is None else "resume", planned, time.monotonic())
    with open(stderr_path, "wb") as stderr:
        child = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=db.parent,
            start_new_session=True,
        )
        signalled_at = _supervise(child, process, stop_after)
    process.ended = time.monotonic()
    process.returncode = child.returncode
    if planned == "term" and signalled_at is not None:
        process.term_to_exit_seconds = process.ended - signalled_at
    text = stderr_path.read_text(errors="replace")
    process.traceback = "Traceback (most recent call last)" in text
    if process.traceback:  # kept for a person to read: the next process overwrites the file
        stderr_path.with_name(f"{stderr_path.name}.{number}").write_text(text)
    lines = [line for line in text.splitlines() if line.strip()]
    process.last_error = next((line for line in reversed(lines) if line.startswith("error:")), "")
    process.leftovers = _reap_session(child.pid)
    process.integrity = quick_check(db)
    return process


def _command(args: argparse.Namespace, db: Path, run_id: str | None, base_url: str) -> list[str]:
    """`evocade run` against the chaos server, or `--resume` of the soak's run."""
    evocade = str(Path(sys.executable).with_name("evocade"))
    common = ["--iterations", str(args.iterations), "--db", str(db)]
    if run_id is not None:
        return [evocade, "run", "--resume", run_id, *common]
    return [
        evocade,
        "run",
        "--game",
        args.game,
        "--model",
        "chaos-model",
        "--base-url",
        base_url,
        "--episodes",
        str(args.episodes),
        "--max-steps",
        str(args.max_steps),
        "--sandbox",
        args.sandbox,
        *common,
    ]


def _supervise(child: subprocess.Popen[bytes], process: Process, stop_after: float) -> float | None:
    """Sample the child's RSS until it exits, signalling it as planned after `stop_after`
    seconds (SIGKILL if it outlives a SIGTERM's deadline); when the signal went out."""
    signalled_at: float | None = None
    planned = process.planned
    while child.poll() is None:
        now = time.monotonic()
        rss = _rss_mb(child.pid)
        if rss is not None:
            process.rss_mb.append((now - process.started, rss))
        if signalled_at is None and planned != "finish" and now - process.started >= stop_after:
            child.send_signal(signal.SIGKILL if planned == "kill" else signal.SIGTERM)
            signalled_at = now
        if signalled_at is not None and now - signalled_at > TERM_DEADLINE_SECONDS:
            child.kill()
        time.sleep(SAMPLE_SECONDS)
    child.wait()
    return signalled_at


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reap_session(session_id: int) -> list[str]:
    """Processes still in the dead process's session (sandboxes it left behind), given
    `LINGER_SECONDS` to end on their own (a fork server exits when it reads its pool's
    socket closed): their command lines, and they are killed."""
    deadline = time.monotonic() + LINGER_SECONDS
    while True:
        left = _session_members(session_id)
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    names = []
    for pid in left:
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80])
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return [name.decode(errors="replace").strip() for name in names]


def _session_members(session_id: int) -> list[int]:
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == session_id:
                left.append(int(entry.name))
        except OSError:
            continue
    return left


if __name__ == "__main__":
    main()
