"""Sandbox overhead: start-up seen by the caller, and steps/s against in-process, side by side.

Prints, all from this one run (these machines are shared and noisy):
  - start-up: from the `evaluate()` call to the policy's first `act()` (the policy, unchecked,
    prints `time.monotonic()` there; the clock is the host's), with a warm pool and cold (a
    pool made for the one evaluation, its fork server or container included), per backend;
  - the policy process's own start (interpreter, imports, confinement, module load): paid by
    every episode, off the critical path once sandboxes are warm;
  - the protocol alone, without an emulator: CPU of one observation out and one action back,
    harness side and policy side (the real runner, confined, no sandbox walls);
  - steps per CPU second on Pong and Space Invaders (dozens of objects per observation):
    in-process (emulator + OCAtari + observation dicts + act() in one thread, pinned to one
    core) against the sandbox (harness and policy pinned to that core by the cgroup's cpuset,
    the CPU of both counted), with and without the RestrictedPython guards, interleaved run by
    run. CPU time, not wall time: on a shared machine wall time measures the neighbours. The
    sandbox is charged its step loop only ("per step": a one-step episode's CPU subtracted) and,
    beside it, the whole episode. Medians and bests (neighbours only ever slow a run down), and
    the floor of any design with the policy in a process of its own: in-process plus one empty
    pipe round trip a step to an idle process on the same core;
  - the seccomp allowlist's own cost: the protocol-alone loop against two real runners side by
    side, one with the filter and one without, interleaved repeat by repeat (`--only seccomp`
    prints just this). The filter-less runner exists only here: this script starts it with
    `install_seccomp_filter` replaced in its own boot line. The sandbox has no switch for it,
    so nothing a policy or a caller can set turns the filter off.

    python benchmarks/bench_sandbox.py [--steps 5000] [--repeats 3] [--backends bwrap,docker]
                                       [--only seccomp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

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


# Answers each line with an action and does nothing else (see `in_process(echo=True)`).
ECHO = "import os\nwhile os.read(0, 65536):\n    os.write(1, b'0\\n')\n"


def _schedstat_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as schedstat:
        return int(schedstat.read().split()[0]) / 1e9


def in_process(
    game: str, source: str, env_settings: EnvSettings, cpu: int, echo: bool = False
) -> tuple[int, float, float]:
    """Steps, wall seconds and CPU seconds (this thread: the pool's threads are not counted) of
    one episode played here, pinned to `cpu`.

    `echo`: each step also makes one empty round trip through two pipes to an idle process on
    the same core, and that process's CPU is counted: the least that any design with the
    policy in a process of its own pays per step (two context switches, and the emulator's
    caches cooling while the other process runs)."""
    namespace: dict = {}
    exec(compile(source, "<policy>", "exec"), namespace)
    act = namespace["act"]
    info = get_game(game)
    env = make_env(game, env_settings.frameskip, env_settings.repeat_action_probability)
    ale = ale_of(env)
    lists = frozenset(info.list_categories)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    peer = None
    if echo:
        peer = subprocess.Popen(
            [sys.executable, "-S", "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        os.sched_setaffinity(peer.pid, {cpu})
    try:
        env.reset(seed=0)
        lives = ale.lives() if info.has_lives else None
        obs = build_observation(env.objects, lists, lives, at_reset=True)
        peer_started = _schedstat_seconds(peer.pid) if peer else 0.0
        steps, started, cpu_started = 0, time.perf_counter(), time.thread_time()
        while steps < env_settings.max_steps:
            _, _, terminated, truncated, _ = env.step(act(obs))
            steps += 1
            lives = ale.lives() if info.has_lives else None
            obs = build_observation(env.objects, lists, lives)
            if peer:
                os.write(peer.stdin.fileno(), b"{}\n")  # type: ignore[union-attr]
                os.read(peer.stdout.fileno(), 64)  # type: ignore[union-attr]
            if terminated or truncated:
                break
        cpu_seconds = time.thread_time() - cpu_started
        if peer:
            cpu_seconds += _schedstat_seconds(peer.pid) - peer_started
        return steps, time.perf_counter() - started, cpu_seconds
    finally:
        os.sched_setaffinity(0, before)
        env.close()
        if peer:
            peer.kill()
            peer.communicate()


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


def sandbox_episode(pool, game: str, source: str, env: EnvSettings, restricted: bool):
    """One sandboxed episode: (steps, wall seconds, CPU seconds of harness + policy)."""
    time.sleep(0.5)  # the replacement sandbox warms meanwhile, not during the episode
    episode = pool.run(EpisodeRequest(source, game, 0, env, Limits(), restricted))
    assert episode.status == "ok", episode.error
    cpu = episode.harness_cpu_seconds + episode.policy_cpu_seconds
    return episode.length, episode.wall_seconds, cpu


def throughput_rows(backend: BackendName, steps: int, repeats: int) -> None:
    """Steps per CPU second, sandbox against in-process, interleaved run by run.

    "per step" charges the sandbox its step loop only: the CPU of a one-step episode (the
    policy interpreter's start, its confinement, the module load, the reset) is subtracted
    from a full one, because a warm sandbox pays those before the evaluation asks for it.
    "whole episode" charges everything, the policy process's start included.
    """
    cpu = sorted(os.sched_getaffinity(0))[0]
    env = EnvSettings.deterministic(max_steps=steps)
    one_step = EnvSettings.deterministic(max_steps=1)
    labels = ("sandbox", "sandbox+guards")
    with open_runner(make_backend(backend, Limits()), slots=1) as pool:
        for game, source in POLICIES.items():
            base: list[float] = []
            floor: list[float] = []
            per_step: dict[str, list[float]] = {label: [] for label in labels}
            whole: dict[str, list[float]] = {label: [] for label in labels}
            lengths = set()
            for run in range(repeats):
                played, _, cpu_seconds = in_process(game, source, env, cpu)
                lengths.add(played)
                base.append(played / cpu_seconds)
                played, _, cpu_seconds = in_process(game, source, env, cpu, echo=True)
                lengths.add(played)
                floor.append(played / cpu_seconds)
                variants = list(zip(labels, (False, True), strict=True))
                for label, restricted in variants if run % 2 == 0 else variants[::-1]:
                    length, _, full = sandbox_episode(pool, game, source, env, restricted)
                    _, _, fixed = sandbox_episode(pool, game, source, one_step, restricted)
                    lengths.add(length)
                    per_step[label].append((length - 1) / max(full - fixed, 1e-9))
                    whole[label].append(length / full)
            assert len(lengths) == 1, f"{game}: runs played different step counts {lengths}"
            print(
                f"{game}, deterministic, {lengths.pop()} steps, {backend}, {repeats} runs each, "
                "steps per CPU second (harness + policy): median (ratio) | best (ratio)"
            )
            rows = {"in-process": base, "+ empty trip": floor, **per_step}
            for label, values in rows.items():
                median, best = statistics.median(values), max(values)
                line = (
                    f"  {label:<16} {median:6.0f} ({median / statistics.median(base):6.1%}) | "
                    f"{best:6.0f} ({best / max(base):6.1%})"
                )
                if label in whole:
                    value = statistics.median(whole[label])
                    line += f"   whole episode {value:5.0f} ({value / statistics.median(base):.1%})"
                print(line)
            print(
                "  (+ empty trip: in-process with one empty pipe round trip a step to an idle "
                "process on the same core, the floor of any two-process design)"
            )


def round_trip_rows(steps: int, repeats: int) -> None:
    """The protocol alone: one game's observation to the real policy runner (confined by its
    rlimits and seccomp filter, no sandbox walls) and an action back, without an emulator.
    CPU microseconds a step, harness side and policy side."""
    import site

    from sandbox.runtime.policy_process import PolicyProcess, parse_reply, policy_argv

    cpu = sorted(os.sched_getaffinity(0))[0]
    print(f"round trip alone (encode, pipe, decode, act() returning 1), median of {repeats}")
    for game in POLICIES:
        info = get_game(game)
        env = make_env(game, 4, 0.0)
        env.reset(seed=0)
        for _ in range(100):  # into the game: Space Invaders' aliens are all on screen
            env.step(1)
        obs = build_observation(env.objects, frozenset(info.list_categories), 3)
        env.close()
        argv = policy_argv(sys.executable, str(ROOT), site.getsitepackages())
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})  # the runner inherits it: one core, as in a sandbox
        policy = PolicyProcess.spawn(argv, {"PYTHONHASHSEED": "0"}, None)
        try:
            setup = {"source": "def act(obs):\n    return 1\n", "restricted": False, "seed": 0}
            setup |= {"n_actions": 6, "memory_mb": 512, "cpu_seconds": 600, "output_bytes": 4096}
            policy.send(setup, 60)
            assert parse_reply(policy.reader.read_line(60) or b"") == {"ready": True}
            harness_us, policy_us = [], []
            for _ in range(repeats):
                policy_started, started = policy.cpu_seconds(), time.thread_time()
                for _ in range(steps):
                    policy.send(obs, 10)
                    assert parse_reply(policy.reader.read_line(10) or b"") == 1
                harness_us.append((time.thread_time() - started) / steps * 1e6)
                policy_us.append((policy.cpu_seconds() - policy_started) / steps * 1e6)
        finally:
            policy.stop()
            policy.exited_within(5)
            os.sched_setaffinity(0, before)
        harness_median, policy_median = statistics.median(harness_us), statistics.median(policy_us)
        print(
            f"  {game:<14} {len(orjson.dumps(obs)):5d} bytes   harness {harness_median:5.1f} us"
            f" + policy {policy_median:5.1f} us = {harness_median + policy_median:5.1f} us a step"
        )


def _start_runner(argv: list[str], cpu: int):
    """The real policy runner on `cpu`, set up with an `act()` returning 1; ready."""
    from sandbox.runtime.policy_process import PolicyProcess, parse_reply

    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})  # the runner inherits it: one core, as in a sandbox
    try:
        policy = PolicyProcess.spawn(argv, {"PYTHONHASHSEED": "0"}, None)
    finally:
        os.sched_setaffinity(0, before)
    setup = {"source": "def act(obs):\n    return 1\n", "restricted": False, "seed": 0}
    setup |= {"n_actions": 6, "memory_mb": 512, "cpu_seconds": 600, "output_bytes": 4096}
    policy.send(setup, 60)
    assert parse_reply(policy.reader.read_line(60) or b"") == {"ready": True}
    return policy


def seccomp_rows(steps: int, repeats: int) -> None:
    """The filter's cost a step: one observation out and an action back, to a runner confined
    by rlimits + the seccomp allowlist and to one with the rlimits only, interleaved; CPU of
    both sides (harness thread + policy process) a step, medians."""
    import site

    from sandbox.runtime.policy_process import parse_reply, policy_argv

    cpu = sorted(os.sched_getaffinity(0))[0]
    argv = policy_argv(sys.executable, str(ROOT), site.getsitepackages())
    boot = argv[-1].replace(
        "from sandbox.runtime.policy_runner import main",
        "import sandbox.runtime.confine as c; c.install_seccomp_filter = lambda: None; "
        "from sandbox.runtime.policy_runner import main",
    )
    assert boot != argv[-1]
    print(
        f"seccomp allowlist, on vs off (protocol alone, pinned to CPU {cpu}), median of {repeats}"
    )
    for game in POLICIES:
        info = get_game(game)
        env = make_env(game, 4, 0.0)
        env.reset(seed=0)
        for _ in range(100):
            env.step(1)
        obs = build_observation(env.objects, frozenset(info.list_categories), 3)
        env.close()
        runners = {"on": _start_runner(argv, cpu), "off": _start_runner([*argv[:-1], boot], cpu)}
        for name, policy in runners.items():  # the kernel's word on each: 2 = filter, 0 = none
            status = Path(f"/proc/{policy.pid}/status").read_text()
            mode = next(
                line.split()[1] for line in status.splitlines() if line.startswith("Seccomp:")
            )
            assert mode == ("2" if name == "on" else "0"), (name, mode)
        per_step: dict[str, list[float]] = {"on": [], "off": []}
        try:
            for _ in range(repeats):
                for name, policy in runners.items():
                    policy_started, started = policy.cpu_seconds(), time.thread_time()
                    for _ in range(steps):
                        policy.send(obs, 10)
                        assert parse_reply(policy.reader.read_line(10) or b"") == 1
                    spent = time.thread_time() - started + policy.cpu_seconds() - policy_started
                    per_step[name].append(spent / steps * 1e6)
        finally:
            for policy in runners.values():
                policy.stop()
                policy.exited_within(5)
        on, off = statistics.median(per_step["on"]), statistics.median(per_step["off"])
        print(
            f"  {game:<14} filter on {on:6.1f} us   off {off:6.1f} us a step   "
            f"difference {on - off:+5.1f} us ({(on - off) / off * 100:+.1f}%)"
            f"   best on {min(per_step['on']):.1f}, off {min(per_step['off']):.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="bwrap,docker")
    parser.add_argument("--only", choices=["seccomp"], help="print only these rows")
    args = parser.parse_args()
    backends: list[BackendName] = []
    for name in args.backends.split(","):
        if name not in BACKEND_NAMES:
            parser.error(f"unknown backend {name!r}: use {', '.join(BACKEND_NAMES)}")
        backends.append(name)
    print(time.strftime("%Y-%m-%d %H:%M"), f"load average {os.getloadavg()[0]:.2f}")
    if args.only == "seccomp":
        seccomp_rows(args.steps, args.repeats)
        return
    startup_rows(backends, args.repeats)
    round_trip_rows(args.steps, args.repeats)
    seccomp_rows(args.steps, args.repeats)
    for backend in backends:
        throughput_rows(backend, args.steps, args.repeats)


if __name__ == "__main__":
    main()
