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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import Store  # noqa: E402
from tests.engine.chaos_llm import ChaosLLM  # noqa: E402

SAMPLE_SECONDS = 0.5
TERM_DEADLINE_SECONDS = 600.0  # after SIGTERM, kill -9 if it is still running by then
LINGER_SECONDS = 5.0  # for what a stopped process leaves to end on its own


@dataclass
class Process:
    """One `evocade run` process: how it ended, and its RSS over time."""

    number: int
    command: str  # "new" | "resume"
    planned: str  # "kill" | "term" | "finish"
    started: float
    ended: float = 0.0
    returncode: int | None = None
    term_to_exit_seconds: float | None = None
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    traceback: bool = False
    last_error: str = ""
    leftovers: list[str] = field(default_factory=list)  # its session, LINGER_SECONDS after
    integrity: str = ""


@dataclass
class Totals:
    processes: list[Process] = field(default_factory=list)
    iterations_over_time: list[tuple[float, int, int]] = field(default_factory=list)  # t, it, B


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
            run_id = _run_id(db)
            done = _iterations(db, run_id)
            if done >= args.iterations:
                break
            process = _one_process(args, rng, db, run_id, chaos.base_url, len(totals.processes))
            totals.processes.append(process)
            run_id = _run_id(db)
            totals.iterations_over_time.append(
                (time.monotonic() - started, _iterations(db, run_id), _db_bytes(db))
            )
            print(_process_line(process, totals.iterations_over_time[-1][1]), flush=True)
    finally:
        served, kinds = chaos.served, chaos.counts()
        chaos.stop()
    wall = time.monotonic() - started
    _report(args, db, totals, wall, served, kinds)
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
    process.integrity = _quick_check(db)
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


def _quick_check(db: Path) -> str:
    if not db.exists():
        return "no database yet"
    connection = sqlite3.connect(db, timeout=30)
    try:
        return str(connection.execute("PRAGMA quick_check").fetchone()[0])
    except sqlite3.Error as error:
        return f"error: {error}"
    finally:
        connection.close()


def _run_id(db: Path) -> str | None:
    if not db.exists():
        return None
    try:
        with Store.open(db, create=False) as store:
            runs = store.runs()
    except Exception:  # not created yet (killed during start-up)
        return None
    return runs[0].run_id if runs else None


def _iterations(db: Path, run_id: str | None) -> int:
    if run_id is None:
        return 0
    with Store.open(db, create=False) as store:
        events = sum(1 for event in store.events(run_id) if event.kind == "iteration")
        if events:
            return events
        return max(len(store.history(run_id)) - 1, 0)


def _db_bytes(db: Path) -> int:
    return sum(
        path.stat().st_size
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if path.exists()
    )


def _process_line(process: Process, iterations: int) -> str:
    peak = max((rss for _, rss in process.rss_mb), default=0.0)
    term = (
        f" term->exit {process.term_to_exit_seconds:.1f}s"
        if process.term_to_exit_seconds is not None
        else ""
    )
    return (
        f"#{process.number:<3} {process.command:<6} {process.planned:<6} "
        f"{process.ended - process.started:6.1f}s rc={process.returncode}{term} "
        f"peak {peak:.0f} MB, iterations {iterations}, left behind {len(process.leftovers)}, "
        f"check {process.integrity}{' TRACEBACK' if process.traceback else ''}"
    )


def _report(
    args: argparse.Namespace,
    db: Path,
    totals: Totals,
    wall: float,
    served: int,
    kinds: Counter[str],
) -> None:
    run_id = _run_id(db)
    iterations = _iterations(db, run_id)
    processes = totals.processes
    print()
    print(
        f"soak: {iterations} iterations in {wall / 60:.1f} min = {iterations / wall * 60:.1f}/min"
    )
    if run_id is not None:
        with Store.open(db, create=False) as store:
            recorded = len(store.llm_calls(run_id))
            usage = store.run_usage(run_id)
            status = store.get_run(run_id).status
            events = Counter(event.kind for event in store.events(run_id))
        print(
            f"LLM calls: {served} served by the chaos server, {recorded} recorded in llm_call "
            f"({served - recorded:+d} served minus recorded); tokens {usage.tokens}"
        )
        print(f"evaluations {usage.evaluations}, env steps {usage.env_steps}; run status {status}")
        print("events: " + ", ".join(f"{kind} {count}" for kind, count in sorted(events.items())))
    size = _db_bytes(db)
    per = size / iterations if iterations else 0.0
    print(f"database: {size / 1e6:.2f} MB, {per / 1e3:.1f} KB per iteration")
    _report_processes(processes)
    print(
        "database bytes over the soak: "
        + ", ".join(
            f"{t / 60:.1f} min: {it} it, {size / 1e6:.2f} MB"
            for t, it, size in totals.iterations_over_time[
                :: max(len(totals.iterations_over_time) // 8, 1)
            ]
        )
    )
    print("chaos answers: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    if args.db is not None or args.keep:
        print(f"(database at {db})")


def _report_processes(processes: list[Process]) -> None:
    """How the processes were stopped and ended, what they left, and their memory."""
    plans = Counter(p.planned for p in processes)
    print(
        f"processes: {len(processes)} ({plans['kill']} kill -9, {plans['term']} SIGTERM, "
        f"{plans['finish']} left to finish); exit codes "
        + ", ".join(
            f"{code}: {n}"
            for code, n in sorted(Counter(p.returncode for p in processes).items(), key=str)
        )
    )
    terms = [p.term_to_exit_seconds for p in processes if p.term_to_exit_seconds is not None]
    if terms:
        print(
            f"SIGTERM -> exit: median {statistics.median(terms):.1f} s, max {max(terms):.1f} s "
            f"over {len(terms)}"
        )
    print(
        f"tracebacks: {sum(p.traceback for p in processes)}; integrity not ok: "
        f"{sum(p.integrity not in ('ok', 'no database yet') for p in processes)}; processes "
        f"left behind after a stop: {sum(len(p.leftovers) for p in processes)}"
    )
    for name, count in Counter(name for p in processes for name in p.leftovers).most_common(5):
        print(f"  left behind x{count}: {name}")
    errors = Counter(p.last_error[:120] for p in processes if p.last_error and p.planned != "kill")
    for line, count in errors.most_common(5):
        print(f"  stderr x{count}: {line}")
    print("RSS of each process (MB): after 10 s / median / peak over its life")
    for p in processes:
        values = [rss for _, rss in p.rss_mb]
        settled = next((rss for t, rss in p.rss_mb if t >= 10.0), None)
        if values:
            print(
                f"  #{p.number:<3} {p.ended - p.started:6.1f}s  "
                f"{'-' if settled is None else f'{settled:.0f}':>5} / "
                f"{statistics.median(values):5.0f} / {max(values):5.0f}"
            )


if __name__ == "__main__":
    main()
