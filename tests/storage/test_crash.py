"""Crash safety: a writer killed with SIGKILL at random moments loses nothing it committed.

A child process writes programs and evaluations (each evaluation with three traces, one
transaction) in a loop and prints each id only after its commit returned. The parent kills it
at random points, 24 times (some during start-up and migration, most mid-write), restarting
it on the same file. Afterwards SQLite's integrity check must pass and every reported id must
be there, each evaluation with all of its traces.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from storage import Store

ROOT = Path(__file__).resolve().parents[2]
KILLS = 24

WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from storage import Store
from tests.storage.factories import PONG_ENV, policy, result

store = Store.open(sys.argv[1])
run = store.create_run("Pong", PONG_ENV)
print("R", run.id, flush=True)
parent = None
number = 0
while True:
    number += 1
    program = store.add_program(
        run.id, policy(number), origin="llm" if parent else "seed", parent_id=parent
    )
    print("P", program.id, flush=True)
    evaluation = store.record_evaluation(
        program.id, result([-21.0 + number % 5, -20.0, -19.0], trace_steps=400)
    )
    print("E", evaluation.id, flush=True)
    store.set_head(run.id, program.id)
    parent = program.id
"""


def _read_until_committed(process: subprocess.Popen[bytes], evaluations: int) -> bytes:
    """The writer's output up to its `evaluations`-th committed evaluation (or its end): the
    kill comes after that many commits, however slow the machine is."""
    assert process.stdout is not None
    seen, lines = 0, []
    deadline = time.monotonic() + 300
    while seen < evaluations and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        seen += line.startswith(b"E ")
    return b"".join(lines)


def test_crash_sigkill_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(int(os.environ.get("EVOCADE_CRASH_SEED", "4")))
    reported: dict[str, set[str]] = {"R": set(), "P": set(), "E": set()}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for attempt in range(KILLS):
        process = subprocess.Popen(
            [sys.executable, str(script), str(db), str(ROOT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        early = b""
        if attempt % 3 == 0:  # anywhere, start-up and migrations included
            time.sleep(rng.uniform(0.0, 0.8))
        else:  # mid-write: after a few commits, at a random moment
            early = _read_until_committed(process, rng.randint(1, 3))
            time.sleep(rng.uniform(0.0, 0.05))
        process.send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=60)
        out = early + out
        assert process.returncode == -signal.SIGKILL, err.decode()[-2000:]
        for line in out.decode().splitlines(keepends=True):
            if line.endswith("\n"):
                kind, row_id = line.split()
                reported[kind].add(row_id)

    # Every mid-write kill (16 of 24) comes after at least one commit, whatever the load.
    assert len(reported["E"]) >= 16, "the writer did not commit before the mid-write kills"
    connection = sqlite3.connect(db)
    assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    traces_per_evaluation = dict(
        connection.execute("SELECT evaluation_id, count(*) FROM trace GROUP BY evaluation_id")
    )
    evaluations = {row[0] for row in connection.execute("SELECT id FROM evaluation")}
    connection.close()
    print(f"reported: {[(kind, len(ids)) for kind, ids in reported.items()]}")
    assert reported["E"] <= evaluations
    assert all(traces_per_evaluation.get(evaluation) == 3 for evaluation in evaluations)

    with Store.open(db, create=False) as store:
        for run_id in reported["R"]:
            assert store.get_run(run_id).game == "Pong"
        for program_id in reported["P"]:
            assert store.get_program(program_id).generation >= 0
        for evaluation_id in reported["E"]:
            assert store.get_evaluation(evaluation_id).mean_return is not None


MIGRATE_THEN_HANG = """
import sys, time
sys.path.insert(0, sys.argv[2])
import storage.db
real_upgrade = storage.db.command.upgrade

def upgrade_then_hang(config, revision):
    real_upgrade(config, revision)  # every table created, inside the open transaction
    print("migrated, not committed", flush=True)
    time.sleep(60)

storage.db.command.upgrade = upgrade_then_hang
from storage import Store
Store.open(sys.argv[1])
"""


def test_crash_sigkill_during_migration_leaves_a_database_that_opens(tmp_path: Path) -> None:
    db = tmp_path / "half.db"
    script = tmp_path / "migrate.py"
    script.write_text(MIGRATE_THEN_HANG)
    process = subprocess.Popen(
        [sys.executable, str(script), str(db), str(ROOT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"migrated, not committed\n", process.stderr
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)

    connection = sqlite3.connect(db)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert "program" not in tables  # the migration was rolled back as a whole
    with Store.open(db) as store:
        run = store.create_run("Pong", {})
        assert store.get_run(run.id).game == "Pong"
