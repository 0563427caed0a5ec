"""Machine utilization of `evocade run`, side by side in one script run (#9's numbers).

    utilization = (env steps played per wall second)
                  / (cores x in-process single-core steps/s of the same policy)

Prints, for the games asked for (default Pong and Breakout), all measured in this one run:
  - the in-process reference: the game's starter policy played here, pinned to one core;
  - the population engine's default offline run (`evocade run --game G`, mutation proposer,
    bwrap, --iterations N): env steps/s, utilization, iterations per hour;
  - the sequential loop evocade had before the population engine (the commit given by
    --baseline, run from a git worktree of it with this venv), same settings;
  - with --llm: the LLM proposer against a scripted OpenAI-compatible server on 127.0.0.1 that
    answers every call after --llm-delay seconds (default 5).

    PYTHONPATH=. python benchmarks/bench_loop.py [--games Pong,Breakout] [--iterations 8]
        [--baseline 78e9a4f] [--llm] [--llm-delay 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_sandbox import in_process  # noqa: E402  (this directory: run as a script)

from engine.seeds import seed_source  # noqa: E402
from sandbox.episodes import usable_cpus  # noqa: E402
from sandbox.settings import EnvSettings  # noqa: E402

RUN = """
import inspect, json, sys, time
from engine.config import RunConfig
from engine.loop import optimize
from engine.proposers.mutate import MutationProposer
from storage import Store
def machine_cpu():
    fields = open("/proc/stat").readline().split()[1:]
    ticks = [int(f) for f in fields]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # busy (not idle, not iowait), all
game, iterations, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
config = RunConfig(game=game, iterations=iterations, sandbox="bwrap", **json.loads(sys.argv[4]))
(busy_before, all_before), cpu_before = machine_cpu(), time.process_time()
started = time.monotonic()
pool, kwargs = None, {}
if "runner" in inspect.signature(optimize).parameters:  # the engine's own pool, to read its stats
    from sandbox.backends.base import Prepare
    from sandbox.evaluate import open_runner
    env = config.full_env()
    setting = (config.game, env.frameskip, env.repeat_action_probability)
    prepare = Prepare(*setting, tuple(config.seeds))
    pool = kwargs["runner"] = open_runner("bwrap", config.limits(), prewarm=prepare)
with Store.open(db) as store:
    outcome = optimize(store, config, MutationProposer(seed=1), **kwargs)
    steps = sum(e.total_steps for e in store.run_evaluations(outcome.run_id))
if pool is not None:
    pool.close()
busy_after, all_after = machine_cpu()
print(json.dumps({"steps": steps, "wall": time.monotonic() - started,
                  "iterations": outcome.iterations,
                  "busy": getattr(outcome, "slot_busy", None),
                  "machine_busy": (busy_after - busy_before) / (all_after - all_before),
                  "coordinator_cpu": time.process_time() - cpu_before,
                  "waited": getattr(getattr(pool, "stats", None), "waited_seconds", None)}))
"""


def reference_steps_per_second(game: str) -> float:
    """In-process steps/s of the starter policy on one core (best of 2 episodes)."""
    env = EnvSettings(max_steps=5000)
    best = 0.0
    for _ in range(2):
        steps, wall, _cpu = in_process(game, seed_source(game), env, usable_cpus()[0])
        best = max(best, steps / wall)
    return best


def run_loop(game: str, iterations: int, code_root: Path, settings: dict[str, Any]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(code_root)}
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                RUN,
                game,
                str(iterations),
                f"{tmp}/run.db",
                json.dumps(settings),
            ],
            cwd=code_root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_llm(game: str, iterations: int, delay: float) -> dict:
    from engine.config import RunConfig
    from engine.loop import optimize
    from engine.proposers.llm import LlmProposer
    from storage import Store
    from tests.engine.scripted_llm import Answer, ScriptedLLM

    counter = itertools.count()
    lock = threading.Lock()

    def answer(_body: dict) -> Answer:
        time.sleep(delay)
        with lock:
            n = next(counter)
        # A distinct source each time (the same one would be reused, not played again).
        return Answer(f"```python\n{seed_source(game)}\n# variant {n}\n```")

    with ScriptedLLM(when_empty=answer) as llm, tempfile.TemporaryDirectory() as tmp:
        proposer = LlmProposer("scripted-model", base_url=llm.base_url, api_key="bench")
        config = RunConfig(
            game=game,
            iterations=iterations,
            sandbox="bwrap",
            proposer="llm",
            model="scripted-model",
        )
        started = time.monotonic()
        with Store.open(f"{tmp}/run.db") as store:
            outcome = optimize(store, config, proposer)
            steps = sum(e.total_steps for e in store.run_evaluations(outcome.run_id))
        return {
            "steps": steps,
            "wall": time.monotonic() - started,
            "iterations": outcome.iterations,
        }


def baseline_tree(commit: str) -> tempfile.TemporaryDirectory[str]:
    tree = tempfile.TemporaryDirectory(prefix="evocade-baseline-")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", tree.name, commit],
        check=True,
        capture_output=True,
    )
    return tree


def report(label: str, result: dict, reference: float, cores: int) -> None:
    rate = result["steps"] / result["wall"]
    per_hour = result["iterations"] / result["wall"] * 3600
    busy = result.get("busy")
    print(
        f"  {label:<34} {result['steps']:>8} steps in {result['wall']:6.1f} s = "
        f"{rate:7.0f} steps/s  utilization {rate / (cores * reference):.2f}  "
        f"{per_hour:6.0f} iterations/h" + (f"  slots busy {busy:.0%}" if busy is not None else ""),
        flush=True,
    )
    if "machine_busy" in result:  # where the CPU went: the steps at in-process cost, the rest
        played = result["steps"] / reference / (cores * result["wall"])
        coordinator = result["coordinator_cpu"] / (cores * result["wall"])
        print(
            f"  {'':<34} machine CPU busy {result['machine_busy']:.0%}: steps at in-process "
            f"cost {played:.0%}, the coordinator process {coordinator:.0%}, sandboxes and "
            f"the rest {result['machine_busy'] - played - coordinator:.0%}"
            + (
                f"; slots waited for a warm sandbox "
                f"{result['waited'] / (cores * result['wall']):.0%} of the time"
                if result.get("waited") is not None
                else ""
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", default="Pong,Breakout")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--baseline", default="", help="commit of the sequential loop")
    parser.add_argument("--llm", action="store_true")
    parser.add_argument("--llm-delay", type=float, default=5.0)
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="JSON",
        help="another engine row with these RunConfig settings, e.g. '{\"concurrency\": 5}'",
    )
    args = parser.parse_args()
    cores = len(usable_cpus())
    print(f"{time.strftime('%Y-%m-%d')}, {cores} cores, {args.iterations} iterations per run")
    tree = baseline_tree(args.baseline) if args.baseline else None
    try:
        for game in args.games.split(","):
            reference = reference_steps_per_second(game)
            print(f"{game}: in-process {reference:.0f} steps/s on one core", flush=True)
            report(
                "population engine (default)",
                run_loop(game, args.iterations, ROOT, {}),
                reference,
                cores,
            )
            for settings in args.also:
                report(
                    f"population engine {settings}",
                    run_loop(game, args.iterations, ROOT, json.loads(settings)),
                    reference,
                    cores,
                )
            if tree is not None:
                old = run_loop(game, args.iterations, Path(tree.name), {})
                report(f"sequential loop ({args.baseline})", old, reference, cores)
            if args.llm:
                result = run_llm(game, args.iterations, args.llm_delay)
                report(f"LLM answering after {args.llm_delay:g} s", result, reference, cores)
    finally:
        if tree is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", tree.name],
                check=False,
                capture_output=True,
            )
            tree.cleanup()


if __name__ == "__main__":
    main()
