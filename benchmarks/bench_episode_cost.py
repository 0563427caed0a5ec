"""What one episode costs beyond its steps: the machine's CPU for short episodes, one at a time.

A warm pool of one slot plays N episodes of a trivial policy back to back (`--max-steps 1` by
default, so nearly all of it is the per-episode cost: the next sandbox started and warmed,
the policy process forked or exec'd, the cgroup, the result read and checked). Prints, per
episode, the machine's busy CPU (all processes, from /proc/stat: run it on a quiet machine),
the wall time, this process's own CPU, and the policy process's CPU as the harness reports it.

    PYTHONPATH=. python benchmarks/bench_episode_cost.py [--backend bwrap] [--episodes 40]
        [--max-steps 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sandbox.backends.base import Prepare
from sandbox.episodes import EpisodeRequest
from sandbox.evaluate import open_runner
from sandbox.settings import EnvSettings, Limits

POLICY = "def act(obs):\n    return 0\n"


def machine_busy_seconds() -> float:
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / 100.0  # all but idle and iowait, USER_HZ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="bwrap")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--max-steps", type=int, default=1)
    args = parser.parse_args()
    env = EnvSettings.deterministic(max_steps=args.max_steps)
    limits = Limits()
    request = EpisodeRequest(POLICY, "Pong", 0, env, limits, restricted=True)
    prepare = Prepare("Pong", env.frameskip, env.repeat_action_probability, (0,))
    with open_runner(args.backend, limits, slots=1, prewarm=prepare) as pool:
        for _ in range(5):  # warm-up: the fork server's first forks, caches
            pool.run(request)
        busy, wall, own = machine_busy_seconds(), time.monotonic(), time.process_time()
        policy = [pool.run(request).policy_cpu_seconds for _ in range(args.episodes)]
        busy = machine_busy_seconds() - busy
        wall, own = time.monotonic() - wall, time.process_time() - own
    n = args.episodes
    print(
        f"{args.backend}, {n} episodes of {args.max_steps} step(s): per episode "
        f"machine CPU {1000 * busy / n:.0f} ms, wall {1000 * wall / n:.0f} ms, "
        f"this process {1000 * own / n:.1f} ms, the policy process "
        f"{1000 * statistics.median(policy):.0f} ms (median)"
    )


if __name__ == "__main__":
    main()
