"""Docker backend cost: start-up overhead per evaluation, and steps/s against in-process.

Start-up: a one-step evaluation end to end (a fresh container: create, attach, start, harness
imports, one step, exit, remove), through docker and through `--sandbox none` (the same harness
as a plain child process); their difference is what the container costs. Also `evaluate()` with
`backend="docker"` by name, which builds the backend (engine ping, image check, reaping) every
call as the CLI does. Speed: the same policy over the same steps in-process and in a container
pinned to one core. Every figure comes from this one run, side by side, because these machines
are shared and noisy. Target: overhead <= 0.5 s.

    python benchmarks/bench_docker.py [--steps 6000] [--repeats 5]

Needs DOCKER_HOST (`eval "$(scripts/dockerd.sh start)"`) and the image (`evocade sandbox
build-image`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

from bench_sandbox import POLICIES, in_process  # benchmarks/ is on sys.path as a script

from sandbox.backends.base import Backend
from sandbox.backends.docker import DockerBackend
from sandbox.episodes import EpisodeRequest
from sandbox.evaluate import evaluate, make_backend, open_runner
from sandbox.results import Status
from sandbox.settings import EnvSettings, Limits

ONE_STEP = EnvSettings.deterministic(max_steps=1)


def one_step_seconds(source: str, backend: Backend | None) -> float:
    """A one-step evaluation end to end on a fresh sandbox of `backend` (None: docker by name,
    which builds the backend too, as the CLI does)."""
    started = time.perf_counter()
    result = evaluate(
        source, "Pong", seeds=[0], env=ONE_STEP, backend=backend or "docker", workers=1
    )
    elapsed = time.perf_counter() - started
    assert result.status == Status.OK, result.episodes[0].error
    return elapsed


def sandbox_speed(source: str, env: EnvSettings, backend: Backend) -> tuple[int, float]:
    """Steps and steps/s of one episode in a sandbox pinned to one core (no guards, like the
    in-process loop), timed by the harness."""
    with open_runner(backend, slots=1) as pool:
        episode = pool.run(EpisodeRequest(source, "Pong", 0, env, Limits(), restricted=False))
    assert episode.status == Status.OK, episode.error
    return episode.length, episode.length / episode.wall_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # a stale image still measures the same
    source = POLICIES["Pong"]
    docker = DockerBackend(Limits())
    local = make_backend("none", Limits())
    env_settings = EnvSettings.deterministic(max_steps=args.steps)
    cpu = sorted(os.sched_getaffinity(0))[0]

    one_step_seconds(source, docker)  # warm the page cache for both
    one_step_seconds(source, local)
    startup: dict[str, list[float]] = {"docker": [], "none": [], "evaluate(docker)": []}
    for _ in range(args.repeats):
        startup["docker"].append(one_step_seconds(source, docker))
        startup["none"].append(one_step_seconds(source, local))
        startup["evaluate(docker)"].append(one_step_seconds(source, None))

    speed: dict[str, list[float]] = {"in-process": [], "docker pinned": []}
    lengths = set()
    for _ in range(max(1, args.repeats // 2)):
        steps, seconds, _ = in_process("Pong", source, env_settings, cpu)
        lengths.add(steps)
        speed["in-process"].append(steps / seconds)
        steps, per_second = sandbox_speed(source, env_settings, docker)
        lengths.add(steps)
        speed["docker pinned"].append(per_second)
    assert len(lengths) == 1, f"runs played different step counts: {lengths}"
    _report(startup, speed, lengths.pop(), docker.image, args.repeats)


def _report(
    startup: dict[str, list[float]],
    speed: dict[str, list[float]],
    steps: int,
    image: str,
    repeats: int,
) -> None:
    median = {label: statistics.median(values) for label, values in startup.items()}
    print(f"policy pong_tracker.py, Pong deterministic, image {image}")
    print(f"start-up, one-step evaluation end to end, median of {repeats}:")
    for label, value in median.items():
        print(f"  {label:<18} {value:6.2f} s")
    overhead = median["docker"] - median["none"]
    verdict = "within" if overhead <= 0.5 else "OVER"
    print(f"  docker overhead    {overhead:6.2f} s per evaluation ({verdict} the 0.5 s target)")
    base = statistics.median(speed["in-process"])
    print(f"speed, {steps} steps, median of {len(speed['in-process'])}:")
    for label, values in speed.items():
        value = statistics.median(values)
        print(f"  {label:<18} {value:8.0f} steps/s   {value / base:6.1%} of in-process")


if __name__ == "__main__":
    main()
