"""Sandbox overhead: start-up seen by the caller, and steps/s against in-process, side by side.

Prints, all from this one run (these machines are shared and noisy):
  - start-up: from the `evaluate()` call to the policy's first `act()` (the policy, unchecked,
    prints `time.monotonic()` there; the clock is the host's), with a warm pool and cold (a
    pool made for the one evaluation, its fork server or container included), per backend;
  - the policy process's own start (interpreter, imports, confinement, module load): paid by
    every episode, off the critical path once sandboxes are warm;
  - steps/s on Pong and Space Invaders (dozens of objects per observation): in-process
    (emulator + OCAtari + observation dicts + act() in one process, pinned to one core) against
    the sandbox (harness and policy pinned to that core by the cgroup's cpuset), with and
    without the RestrictedPython guards. The sandbox's figure is the harness's own episode wall
    time (reset to last step), the in-process one the same loop timed here.

    python benchmarks/bench_sandbox.py [--steps 5000] [--repeats 3] [--backends bwrap,docker]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sandbox.episodes import EpisodeRequest
from sandbox.evaluate import evaluate, make_backend, open_runner
from sandbox.games import get_game
from sandbox.names import BACKEND_NAMES, BackendName
from sandbox.runtime.emulator import ale_of, make_env
from sandbox.runtime.observation import build_observation
from sandbox.settings import EnvSettings, Limits

ROOT = Path(__file__).resolve().parents[1]
POLICIES = {
    "Pong": (ROOT / "tests" / "sandbox" / "programs" / "pong_tracker.py").read_text(),
    # Follows the lowest alien: reads every object of the observation each step.
    "SpaceInvaders": (
        "def act(obs):\n"
        "    player = obs.get('Player')\n"
        "    aliens = obs.get('Alien', [])\n"
        "    if player is None or not aliens:\n"
        "        return 1\n"
        "    target = max(aliens, key=lambda a: (a['y'], -abs(a['x'] - player['x'])))\n"
        "    if abs(target['x'] - player['x']) < 4:\n"
        "        return 1\n"
        "    return 2 if target['x'] > player['x'] else 3\n"
    ),
}
FIRST_ACT = (
    "import time\n"
    "said = False\n"
    "def act(obs):\n"
    "    global said\n"
    "    if not said:\n"
    "        said = True\n"
    "        print(repr(time.monotonic()))\n"
    "    return 0\n"
)


def in_process(
    game: str, source: str, env_settings: EnvSettings, cpu: int
) -> tuple[int, float, float]:
    """Steps, wall seconds and CPU seconds of one episode played here, pinned to `cpu`."""
    namespace: dict = {}
    exec(compile(source, "<policy>", "exec"), namespace)
    act = namespace["act"]
    info = get_game(game)
    env = make_env(game, env_settings.frameskip, env_settings.repeat_action_probability)
    ale = ale_of(env)
    lists = frozenset(info.list_categories)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        env.reset(seed=0)
        lives = ale.lives() if info.has_lives else None
        obs = build_observation(env.objects, lists, lives, at_reset=True)
        steps, started, cpu_started = 0, time.perf_counter(), time.process_time()
        while steps < env_settings.max_steps:
            _, _, terminated, truncated, _ = env.step(act(obs))
            steps += 1
            lives = ale.lives() if info.has_lives else None
            obs = build_observation(env.objects, lists, lives)
            if terminated or truncated:
                break
        return steps, time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        os.sched_setaffinity(0, before)
        env.close()


def first_act_seconds(backend: str, pool) -> float:
    """From evaluate() to the first act(), warm (pool) or cold (pool=None)."""
    env = EnvSettings.deterministic(max_steps=2)
    started = time.monotonic()
    kwargs = {"pool": pool} if pool is not None else {"backend": backend}
    result = evaluate(FIRST_ACT, "Pong", seeds=[0], env=env, check=False, **kwargs)
    episode = result.episodes[0]
    assert episode.status == "ok", episode.error
    return float(episode.output.split()[0]) - started


def policy_process_start() -> float:
    """Seconds from spawning the policy runner to its `ready` (imports, seccomp, module load)."""
    import site

    from sandbox.runtime.harness import policy_argv

    argv = policy_argv(sys.executable, str(ROOT), site.getsitepackages())
    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    setup = (
        '{"source": "def act(obs):\\n    return 0\\n", "restricted": true, "seed": 0, '
        '"n_actions": 6, "memory_mb": 256, "cpu_seconds": 60, "output_bytes": 16384}\n'
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [*argv, str(request_read), str(reply_write)],
        pass_fds=(request_read, reply_write),
        env={"PYTHONHASHSEED": "0"},
    )
    os.close(request_read)
    os.close(reply_write)
    os.write(request_write, setup.encode())
    with os.fdopen(reply_read, "rb") as replies:
        assert b"ready" in replies.readline()
    elapsed = time.perf_counter() - started
    os.close(request_write)
    process.kill()
    process.wait()
    return elapsed


def startup_rows(backends: list[BackendName], repeats: int) -> None:
    print("start-up, evaluate() call to the first act(), median of", repeats)
    for name in backends:
        with open_runner(make_backend(name, Limits()), slots=1) as pool:
            first_act_seconds(name, pool)  # builds and caches the emulator for this setting
            warm = []
            for _ in range(repeats):
                time.sleep(1.0)  # the replacement sandbox warms meanwhile
                warm.append(first_act_seconds(name, pool))
        cold = [first_act_seconds(name, None) for _ in range(max(1, repeats // 2))]
        print(
            f"  {name:<7} warm {statistics.median(warm) * 1000:7.1f} ms   "
            f"cold {statistics.median(cold) * 1000:7.1f} ms"
        )
    starts = [policy_process_start() for _ in range(repeats)]
    print(
        f"  policy process start (per episode, off the critical path when warm): "
        f"{statistics.median(starts) * 1000:.1f} ms"
    )


def throughput_rows(backend: BackendName, steps: int, repeats: int) -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    env = EnvSettings.deterministic(max_steps=steps)
    with open_runner(make_backend(backend, Limits()), slots=1) as pool:
        for game, source in POLICIES.items():
            labels = ("in-process", "sandbox", "sandbox+guards")
            rows: dict[str, list[float]] = {label: [] for label in labels}
            per_cpu: dict[str, list[float]] = {label: [] for label in labels}
            lengths = set()
            for _ in range(repeats):
                played, seconds, cpu_seconds = in_process(game, source, env, cpu)
                lengths.add(played)
                rows["in-process"].append(played / seconds)
                per_cpu["in-process"].append(played / cpu_seconds)
                for label, restricted in (("sandbox", False), ("sandbox+guards", True)):
                    request = EpisodeRequest(source, game, 0, env, Limits(), restricted)
                    episode = pool.run(request)
                    assert episode.status == "ok", episode.error
                    lengths.add(episode.length)
                    rows[label].append(episode.length / episode.wall_seconds)
                    both = episode.harness_cpu_seconds + episode.policy_cpu_seconds
                    per_cpu[label].append(episode.length / both)
            assert len(lengths) == 1, f"{game}: runs played different step counts {lengths}"
            base = statistics.median(rows["in-process"])
            base_cpu = statistics.median(per_cpu["in-process"])
            print(f"{game}, deterministic, {lengths.pop()} steps, {backend}, median of {repeats}")
            for label in labels:
                value = statistics.median(rows[label])
                cpu_value = statistics.median(per_cpu[label])
                print(
                    f"  {label:<16} {value:8.0f} steps/s {value / base:7.1%} of in-process   "
                    f"| {cpu_value:8.0f} steps per CPU second {cpu_value / base_cpu:7.1%}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="bwrap,docker")
    args = parser.parse_args()
    backends: list[BackendName] = []
    for name in args.backends.split(","):
        if name not in BACKEND_NAMES:
            parser.error(f"unknown backend {name!r}: use {', '.join(BACKEND_NAMES)}")
        backends.append(name)
    print(time.strftime("%Y-%m-%d %H:%M"), f"load average {os.getloadavg()[0]:.2f}")
    startup_rows(backends, args.repeats)
    for backend in backends:
        throughput_rows(backend, args.steps, args.repeats)


if __name__ == "__main__":
    main()
