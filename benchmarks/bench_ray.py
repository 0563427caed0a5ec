"""The Ray executor against the local warm pool on the same machine, side by side in one run.

Prints, all from this one run (these machines are shared and noisy):
  - dispatch overhead: wall time per 1-step Pong episode, one at a time on a warm sandbox (the
    latency a caller sees) and with every slot busy (the cost per episode at full load, warm-up
    of the next sandbox included), through the local `WarmPool` and through `RayRunner`; the
    difference is what Ray's round trip, the request's trip to the node and the result's
    validation add per episode; and the bare round trip of a call to a node's actor;
  - utilization: env steps per second of a batch of Pong episodes played over the cluster
    against the same batch on the local pool. On the 2-node local cluster both executors share
    this machine's cores, so the ratio says how much of the local throughput the cluster keeps
    (1.0 = nothing lost to distribution); on a real cluster each node adds its own cores.

Both runners are warmed (one round of episodes, untimed) before anything is measured.

    eval "$(scripts/ray-cluster.sh start)"
    python benchmarks/bench_ray.py [--address ADDR] [--episodes 8] [--steps 1000] [--quick 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.executors import RayUnavailable, open_ray_runner
from sandbox.episodes import EpisodeRequest
from sandbox.evaluate import open_runner
from sandbox.settings import EnvSettings, Limits

ROOT = Path(__file__).resolve().parents[1]
POLICY = (ROOT / "tests" / "sandbox" / "programs" / "pong_tracker.py").read_text()
LIMITS = Limits()
PAUSE_SECONDS = 2.0


def _requests(count: int, max_steps: int, first_seed: int = 0) -> list[EpisodeRequest]:
    env = EnvSettings(max_steps=max_steps)
    return [EpisodeRequest(POLICY, "Pong", first_seed + i, env, LIMITS) for i in range(count)]


def _batch(runner: Any, requests: list[EpisodeRequest], threads: int) -> tuple[float, int]:
    """Wall seconds for the batch, and the env steps it played."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        episodes = list(pool.map(runner.run, requests))
    wall = time.monotonic() - started
    bad = [episode for episode in episodes if episode.status != "ok"]
    if bad:
        raise SystemExit(f"an episode did not end ok: {bad[0].status} {bad[0].error}")
    return wall, sum(episode.length for episode in episodes)


def _sequential_ms(runner: Any, count: int) -> float:
    """Median wall time of one 1-step episode, one at a time (ms), each sent after a pause in
    which the next warm sandbox gets ready (else this would time the warm-up, not the call)."""
    times = []
    for request in _requests(count, 1):
        time.sleep(PAUSE_SECONDS)
        started = time.monotonic()
        runner.run(request)
        times.append(time.monotonic() - started)
    return 1000 * statistics.median(times)


def _round_trip_ms(runner: Any, count: int) -> float:
    """Median wall time of a no-work call to a node's actor (ms)."""
    import ray

    actor = runner._nodes[0].actor
    times = []
    for _ in range(count):
        started = time.monotonic()
        ray.get(actor.status.remote())
        times.append(time.monotonic() - started)
    return 1000 * statistics.median(times)


def measure(runner: Any, episodes: int, steps: int, quick: int) -> dict[str, float]:
    slots = runner.slots
    _batch(runner, _requests(slots, 1), slots)  # warm every slot
    sequential = _sequential_ms(runner, quick)
    wall, _ = _batch(runner, _requests(quick, 1), slots)
    loaded = 1000 * wall / quick
    wall, played = _batch(runner, _requests(episodes, steps, first_seed=100), slots)
    return {
        "slots": slots,
        "sequential_ms": sequential,
        "loaded_ms": loaded,
        "steps_per_s": played / wall,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--address",
        default=os.environ.get("EVOCADE_RAY_ADDRESS") or os.environ.get("EVOCADE_TEST_RAY_ADDRESS"),
        help="the Ray cluster (default: EVOCADE_RAY_ADDRESS or EVOCADE_TEST_RAY_ADDRESS)",
    )
    parser.add_argument("--backend", default="bwrap")
    parser.add_argument("--episodes", type=int, default=8, help="Pong episodes in the batch")
    parser.add_argument("--steps", type=int, default=1000, help="step cap of each of them")
    parser.add_argument("--quick", type=int, default=20, help="1-step episodes per figure")
    args = parser.parse_args()
    if not args.address:
        raise SystemExit('no cluster: eval "$(scripts/ray-cluster.sh start)" first')
    results = {}
    with open_runner(args.backend, LIMITS) as pool:
        results["local WarmPool"] = measure(pool, args.episodes, args.steps, args.quick)
    try:
        runner = open_ray_runner(args.address, args.backend, LIMITS)
    except RayUnavailable as error:
        raise SystemExit(f"error: {error}") from None
    with runner:
        nodes = len(runner.nodes)
        results[f"Ray, {nodes} nodes"] = measure(runner, args.episodes, args.steps, args.quick)
        round_trip = _round_trip_ms(runner, args.quick)
    print(
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, backend {args.backend}, Python "
        f"{sys.version.split()[0]}; batch: {args.episodes} Pong episodes x {args.steps} steps"
    )
    print(
        f"{'executor':<16}{'slots':>6}{'1-step ms (one)':>17}{'1-step ms (full)':>18}"
        f"{'batch steps/s':>15}{'batch wall s':>14}"
    )
    for name, figures in results.items():
        print(
            f"{name:<16}{figures['slots']:>6.0f}{figures['sequential_ms']:>17.1f}"
            f"{figures['loaded_ms']:>18.1f}{figures['steps_per_s']:>15.0f}{figures['wall_s']:>14.1f}"
        )
    local, ray = results["local WarmPool"], results[f"Ray, {nodes} nodes"]
    print(
        f"dispatch overhead per episode: {ray['sequential_ms'] - local['sequential_ms']:+.1f} ms "
        f"one at a time, {ray['loaded_ms'] - local['loaded_ms']:+.1f} ms at full load; "
        f"cluster/local steps/s: {ray['steps_per_s'] / local['steps_per_s']:.2f}"
    )
    print(f"bare Ray round trip to a node's actor: {round_trip:.2f} ms (median)")


if __name__ == "__main__":
    main()
