"""Storage speed and trace size on a large generated database; prints figures, asserts nothing.

Builds (bulk inserts) a SQLite database of 100,000 programs in 100 runs, one evaluation each,
where run 0 is a single 10,000-deep chain and the other runs are random trees. Then times the
questions the CLI and the loop ask, through the public `Store` API (median of several calls,
ms; target <= 50 ms each), and measures how many bytes a realistic 5,000-step Pong trace costs
per step once stored.

    python benchmarks/bench_storage.py                  # temporary database, removed after
    python benchmarks/bench_storage.py --db big.db      # keep (and reuse) the database
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select

from storage import Store, env_key, seeds_key
from storage.models import Evaluation, Program, Run, new_id

ENV = {"frameskip": 4, "repeat_action_probability": 0.25, "max_steps": 27000}
ENV_KEY = env_key("Pong", ENV)
SEEDS = [0, 1, 2]
TARGET_MS = 50.0


def _source(number: int, rng: random.Random) -> str:
    threshold = rng.randint(1, 12)
    return (
        "def act(obs):\n"
        f"    # candidate {number}\n"
        '    player, ball = obs.get("Player"), obs.get("Ball")\n'
        "    if player is None or ball is None:\n"
        "        return 0\n"
        f'    if ball["y"] < player["y"] - {threshold}:\n'
        "        return 2\n"
        f'    if ball["y"] > player["y"] + {threshold}:\n'
        "        return 3\n"
        "    return 0\n"
    )


def _run_row(now: Callable[[], datetime]) -> dict[str, Any]:
    return {
        "id": new_id(),
        "game": "Pong",
        "env": ENV,
        "config": {"iterations": 1000},
        "status": "finished",
        "created_at": now(),
        "updated_at": now(),
    }


def _program_row(
    program_id: str,
    run_id: str,
    source: str,
    ids: list[str],
    parent: int | None,
    generation: int,
    created_at: datetime,
) -> dict[str, Any]:
    """A program row; `parent` is the parent's position in `ids` (the run's programs so far)."""
    return {
        "id": program_id,
        "run_id": run_id,
        "source": source,
        "sha256": hashlib.sha256(source.encode()).hexdigest(),
        "parent_id": ids[parent] if parent is not None else None,
        "second_parent_id": None,
        "origin": "seed" if parent is None else "llm",
        "generation": generation,
        "created_at": created_at,
        "check_report": {"ok": True, "diagnostics": []},
        "note": None,
    }


def _evaluation_row(
    program_id: str, run_id: str, rng: random.Random, now: Callable[[], datetime]
) -> dict[str, Any]:
    """An evaluation row with random returns and lengths, 80% of them `ok`."""
    returns = [float(rng.randint(-21, 21)) for _ in SEEDS]
    lengths = [rng.randint(800, 8000) for _ in SEEDS]
    status = "ok" if rng.random() < 0.8 else rng.choice(["error", "timeout"])
    return {
        "id": new_id(),
        "program_id": program_id,
        "run_id": run_id,
        "game": "Pong",
        "env": ENV,
        "env_key": ENV_KEY,
        "seeds": SEEDS,
        "seeds_key": seeds_key(SEEDS),
        "episodes": [
            {"seed": s, "status": status, "return": r, "length": n, "error": None}
            for s, r, n in zip(SEEDS, returns, lengths, strict=True)
        ],
        "mean_return": sum(returns) / len(returns),
        "total_steps": sum(lengths),
        "backend": "bwrap",
        "checked": True,
        "check_report": None,
        "limits": None,
        "wall_seconds": sum(lengths) / 1700,
        "cpu_seconds": 1.0,
        "peak_memory_mb": 30.0,
        "status": status,
        "created_at": now(),
    }


def build(store: Store, programs: int, runs: int, chain: int, seed: int = 0) -> dict[str, Any]:
    """Bulk-insert the generated database; returns ids the timings need."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    tick = iter(range(10**9))

    def now() -> datetime:
        return start + timedelta(milliseconds=next(tick))

    run_rows: list[dict[str, Any]] = [_run_row(now) for _ in range(runs)]
    program_rows: list[dict[str, Any]] = []
    evaluation_rows: list[dict[str, Any]] = []
    per_run = [chain] + [
        (programs - chain) // (runs - 1) + (1 if i < (programs - chain) % (runs - 1) else 0)
        for i in range(runs - 1)
    ]
    for index, (run, count) in enumerate(zip(run_rows, per_run, strict=True)):
        ids: list[str] = []
        generations: list[int] = []
        for position in range(count):
            if position == 0:
                parent = None
            elif index == 0:
                parent = position - 1  # the deep chain
            else:
                parent = rng.randrange(max(0, position - 50), position)  # a bushy tree
            source = _source(len(program_rows), rng)
            program_id = new_id()
            generation = generations[parent] + 1 if parent is not None else 0
            program_rows.append(
                _program_row(program_id, run["id"], source, ids, parent, generation, now())
            )
            ids.append(program_id)
            generations.append(generation)
            evaluation_rows.append(_evaluation_row(program_id, run["id"], rng, now))
        run["head_program_id"] = ids[-1]
    # Bulk inserts through the store's own write transaction: the per-row API would take
    # minutes for 200,000 rows, and the schema (constraints, foreign keys) still checks them.
    with store._write() as session:
        session.execute(insert(Run), [{**row, "head_program_id": None} for row in run_rows])
        for table, rows in ((Program, program_rows), (Evaluation, evaluation_rows)):
            for offset in range(0, len(rows), 10_000):
                session.execute(insert(table), rows[offset : offset + 10_000])
    for row in run_rows:
        store.set_head(row["id"], row["head_program_id"])
    chain_ids = [row["id"] for row in program_rows[:chain]]
    return {
        "chain_run": run_rows[0]["id"],
        "typical_run": run_rows[runs // 2]["id"],
        "chain_root": chain_ids[0],
        "chain_tip": chain_ids[-1],
        "typical_program": program_rows[chain + 500]["id"],
        "typical_size": per_run[runs // 2],
    }


def pong_trace(steps: int, rng: random.Random) -> dict[str, Any]:
    """What the sandbox records for one Pong episode (see sandbox.results.Trace).

    A tracking policy holds one action for several steps at a time; 21 points lost and 15 won;
    the 8 steps before each point plus the last step as full observations, capped at 240.
    """
    actions: list[str] = []
    while len(actions) < steps:
        actions.extend(rng.choice("0233") * max(1, int(rng.expovariate(1 / 6))))
    events = sorted(rng.sample(range(50, steps), 36))
    rewards = [[step, -1.0 if i % 7 else 1.0] for i, step in enumerate(events)]
    snapshot_steps = sorted({s for e in events for s in range(e - 8, e + 1)} | {steps - 1})
    snapshots = []
    for step in snapshot_steps[-240:]:
        player_y = rng.randint(34, 190)
        snapshots.append(
            {
                "step": step,
                "obs": {
                    "Player": {"x": 140, "y": player_y, "w": 4, "h": 15, "dx": 0, "dy": 0},
                    "Ball": {
                        "x": rng.randint(0, 160),
                        "y": rng.randint(34, 194),
                        "w": 2,
                        "h": 4,
                        "dx": rng.choice([-2, 2]),
                        "dy": rng.randint(-3, 3),
                    },
                    "Enemy": {
                        "x": 16,
                        "y": rng.randint(34, 190),
                        "w": 4,
                        "h": 15,
                        "dx": 0,
                        "dy": 0,
                    },
                },
                "action": int(actions[step]),
                "reward": 0.0,
            }
        )
    return {
        "actions": "".join(actions[:steps]),
        "rewards": rewards,
        "life_losses": [],
        "snapshots": snapshots,
        "truncated": False,
    }


def median_ms(call: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall-clock ms of `call` through the public API (Python objects included)."""
    call()  # warm caches
    times = []
    answer: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one)")
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--chain", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path = args.db or Path(scratch) / "bench.db"
        with Store.open(path) as store:
            with store._read() as session:
                existing = session.scalar(select(func.count()).select_from(Program))
            if existing:
                sys.exit(f"{path} already holds {existing} programs; give a new --db path")
            started = time.perf_counter()
            ids = build(store, args.programs, args.runs, args.chain)
            build_s = time.perf_counter() - started
        size_mb = path.stat().st_size / 2**20
        print(
            f"built {args.programs:,} programs / {args.programs:,} evaluations in {args.runs} runs "
            f"(one {args.chain:,}-deep chain) in {build_s:.1f} s; file {size_mb:.0f} MiB"
        )

        with Store.open(path, create=False) as store:
            time_queries(store, ids, args.chain, args.runs, args.repeat)
            measure_trace(store)


def time_queries(
    store: Store, ids: dict[str, Any], chain_length: int, runs: int, repeat: int
) -> None:
    """Print the median time of each query against its target."""
    chain_run, typical_run = ids["chain_run"], ids["typical_run"]
    chain, typical = f"{chain_length:,}", f"{ids['typical_size']:,}"
    best, ancestors, descendants = store.best_program, store.ancestors, store.descendants
    cases: list[tuple[str, Callable[[], object], Callable[[Any], str]]] = [
        (f"best of run (typical, {typical}-program)", lambda: best(typical_run), _none),
        (f"best of run ({chain}-program run)", lambda: best(chain_run), _none),
        (f"ancestors of {chain}-deep chain tip", lambda: ancestors(ids["chain_tip"]), _len),
        (f"descendants of {chain}-chain root", lambda: descendants(ids["chain_root"]), _len),
        ("lineage (typical program)", lambda: store.lineage(ids["typical_program"]), _lin),
        (f"history (typical, {typical}-program)", lambda: store.history(typical_run), _len),
        (f"history ({chain}-program run)", lambda: store.history(chain_run), _len),
        (f"runs listing ({runs} runs)", store.runs, _len),
        ("resolve 8-char program id", lambda: store.resolve_program(ids["chain_tip"][:8]), _none),
        (
            "find_evaluation",
            lambda: store.find_evaluation(ids["chain_tip"], ENV_KEY, SEEDS),
            _none,
        ),
    ]
    print(
        f"\n{'query (median of ' + str(repeat) + ')':<36} {'ms':>8}  {'rows':>6}  "
        f"(target <= {TARGET_MS:.0f} ms)"
    )
    for name, call, describe in cases:
        ms, answer = median_ms(call, repeat)
        flag = "" if ms <= TARGET_MS else "  over target"
        print(f"{name:<36} {ms:>8.1f}  {describe(answer):>6}{flag}")


def measure_trace(store: Store) -> None:
    """Print how many bytes a 5,000-step Pong-like episode's trace takes, raw and stored."""
    from storage.encode import encode_trace

    rng = random.Random(1)
    run = store.create_run("Pong", ENV)
    program = store.add_program(run.id, _source(-1, rng), origin="manual")
    steps = 5000
    trace = pong_trace(steps, rng)
    result = {
        "game": "Pong",
        "env": ENV,
        "backend": "bwrap",
        "checked": True,
        "status": "ok",
        "episodes": [{"seed": 0, "status": "ok", "return": -6.0, "length": steps, "trace": trace}],
        "wall_seconds": 3.0,
    }
    evaluation = store.record_evaluation(program.id, result)
    (stored,) = store.traces(evaluation.id)
    print(
        f"\ntrace of a {steps:,}-step Pong-like episode ({len(trace['snapshots'])} "
        f"snapshots, {len(trace['rewards'])} rewards): raw JSON {stored.raw_bytes:,} B "
        f"({stored.raw_bytes / steps:.1f} B/step), stored {stored.stored_bytes:,} B "
        f"= {stored.stored_bytes / steps:.2f} B/step"
    )
    lean = encode_trace({"actions": trace["actions"], "rewards": trace["rewards"]})
    print(
        f"  of which actions + rewards alone: {lean.stored_bytes:,} B "
        f"= {lean.stored_bytes / steps:.2f} B/step"
    )


def _none(answer: Any) -> str:
    return "1" if answer is not None else "0"


def _len(answer: Any) -> str:
    return str(len(answer))


def _lin(answer: Any) -> str:
    return str(1 + len(answer.ancestors) + len(answer.descendants))


if __name__ == "__main__":
    main()
