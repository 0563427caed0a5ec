"""Sandbox overhead: the same policy over the same steps, in-process and in the sandbox.

Prints steps/s in-process (emulator + OCAtari + observation dicts + act() in one process), in the
sandbox with the harness and policy pinned to one core and unpinned, the ratios, and the
sandbox start-up time (an evaluation of one step). Every figure comes from this one run, side
by side, because these machines are shared and noisy.

    python benchmarks/bench_sandbox.py [--steps 6000] [--backend bwrap] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from sandbox.evaluate import make_backend
from sandbox.games import get_game
from sandbox.runtime.emulator import make_env
from sandbox.runtime.observation import build_observation
from sandbox.settings import EnvSettings, Limits

POLICY = Path(__file__).resolve().parents[1] / "tests" / "sandbox" / "programs" / "pong_tracker.py"


def in_process(source: str, env_settings: EnvSettings) -> tuple[int, float]:
    namespace: dict = {}
    exec(compile(source, "<policy>", "exec"), namespace)
    act = namespace["act"]
    game = get_game("Pong")
    env = make_env("Pong", env_settings.frameskip, env_settings.repeat_action_probability)
    env.reset(seed=0)
    lists = frozenset(game.list_categories)
    steps = 0
    started = time.perf_counter()
    obs = build_observation(env.objects, lists, None)
    while steps < env_settings.max_steps:
        _, _, truncated, terminated, _ = env.step(act(obs))
        steps += 1
        obs = build_observation(env.objects, lists, None)
        if truncated or terminated:
            break
    return steps, time.perf_counter() - started


def sandboxed(source: str, env_settings: EnvSettings, backend, cpu: int | None, check: bool):
    request = {
        "source": source,
        "restricted": check,
        "game": "Pong",
        "env": env_settings.model_dump(),
        "limits": Limits().model_dump(),
        "seeds": [0],
        "cpu": cpu,
    }
    started = time.perf_counter()
    outcome = backend.run_worker(json.dumps(request).encode(), 600)
    total = time.perf_counter() - started
    episode = json.loads(outcome.stdout.splitlines()[0])
    assert episode["status"] == "ok", episode["error"]
    return episode["length"], episode["wall_seconds"], total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--backend", default="bwrap")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    source = POLICY.read_text()
    # Deterministic settings: every run plays exactly the same steps.
    env_settings = EnvSettings.deterministic(max_steps=args.steps)
    backend = make_backend(args.backend, Limits())

    rows: dict[str, list[float]] = {
        "in-process": [],
        "pinned": [],
        "unpinned": [],
        "pinned+restricted": [],
    }
    startup: list[float] = []
    lengths = set()
    for _ in range(args.repeats):
        steps, seconds = in_process(source, env_settings)
        lengths.add(steps)
        rows["in-process"].append(steps / seconds)
        for label, cpu, check in (
            ("pinned", 0, False),
            ("unpinned", None, False),
            ("pinned+restricted", 0, True),
        ):
            steps, seconds, _ = sandboxed(source, env_settings, backend, cpu, check)
            lengths.add(steps)
            rows[label].append(steps / seconds)
        one_step = EnvSettings.deterministic(max_steps=1)
        _, _, total = sandboxed(source, one_step, backend, 0, True)
        startup.append(total)
    assert len(lengths) == 1, f"runs played different step counts: {lengths}"
    base = statistics.median(rows["in-process"])
    print(
        f"policy {POLICY.name}, Pong deterministic, {lengths.pop()} steps, "
        f"backend {backend.name}, median of {args.repeats}"
    )
    for label, values in rows.items():
        value = statistics.median(values)
        print(f"  {label:<18} {value:8.0f} steps/s   {value / base:6.1%} of in-process")
    print(
        f"  sandbox start-up (one-step evaluation, end to end): {statistics.median(startup):.2f} s"
    )


if __name__ == "__main__":
    main()
