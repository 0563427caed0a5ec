"""What a soak (`benchmarks/soak.py`) records and prints: each `evocade run` process's life,
the database's state between processes (read through `Store`, and SQLite's quick_check), and
the final report. Asserts nothing; the soak's docstring says what the figures mean."""

from __future__ import annotations

import argparse
import sqlite3
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from storage import Store


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


def quick_check(db: Path) -> str:
    if not db.exists():
        return "no database yet"
    connection = sqlite3.connect(db, timeout=30)
    try:
        return str(connection.execute("PRAGMA quick_check").fetchone()[0])
    except sqlite3.Error as error:
        return f"error: {error}"
    finally:
        connection.close()


def run_id_in(db: Path) -> str | None:
    if not db.exists():
        return None
    try:
        with Store.open(db, create=False) as store:
            runs = store.runs()
    except Exception:  # not created yet (killed during start-up)
        return None
    return runs[0].run_id if runs else None


def iterations_in(db: Path, run_id: str | None) -> int:
    if run_id is None:
        return 0
    with Store.open(db, create=False) as store:
        events = sum(1 for event in store.events(run_id) if event.kind == "iteration")
        if events:
            return events
        return max(len(store.history(run_id)) - 1, 0)


def db_bytes(db: Path) -> int:
    return sum(
        path.stat().st_size
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if path.exists()
    )


def process_line(process: Process, iterations: int) -> str:
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


def report(
    args: argparse.Namespace,
    db: Path,
    totals: Totals,
    wall: float,
    served: int,
    kinds: Counter[str],
) -> None:
    run_id = run_id_in(db)
    iterations = iterations_in(db, run_id)
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
    size = db_bytes(db)
    per = size / iterations if iterations else 0.0
    print(f"database: {size / 1e6:.2f} MB, {per / 1e3:.1f} KB per iteration")
    report_processes(processes)
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


def report_processes(processes: list[Process]) -> None:
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
