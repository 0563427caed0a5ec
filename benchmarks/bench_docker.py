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
import statistics
import time
import warnings

from bench_sandbox import POLICY, in_process, sandboxed  # benchmarks/ is on sys.path as a script

from sandbox.evaluate import evaluate, make_backend
from sandbox.results import Status
from sandbox.settings import EnvSettings, Limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # a stale image still measures the same
    source = POLICY.read_text()
    docker = make_backend("docker", Limits())
    local = make_backend("none", Limits())
    one_step = EnvSettings.deterministic(max_steps=1)
    env_settings = EnvSettings.deterministic(max_steps=args.steps)

    sandboxed(source, one_step, docker, 0, True)  # warm the page cache for both
    sandboxed(source, one_step, local, 0, True)
    startup: dict[str, list[float]] = {"docker": [], "none": [], "evaluate(docker)": []}
    for _ in range(args.repeats):
        startup["docker"].append(sandboxed(source, one_step, docker, 0, True)[2])
        startup["none"].append(sandboxed(source, one_step, local, 0, True)[2])
        started = time.perf_counter()
        result = evaluate(source, "Pong", seeds=[0], env=one_step, backend="docker", workers=1)
        startup["evaluate(docker)"].append(time.perf_counter() - started)
        assert result.status == Status.OK, result.episodes[0].error

    speed: dict[str, list[float]] = {"in-process": [], "docker pinned": []}
    lengths = set()
    for _ in range(max(1, args.repeats // 2)):
        steps, seconds = in_process(source, env_settings)
        lengths.add(steps)
        speed["in-process"].append(steps / seconds)
        steps, seconds, _ = sandboxed(source, env_settings, docker, 0, False)
        lengths.add(steps)
        speed["docker pinned"].append(steps / seconds)
    assert len(lengths) == 1, f"runs played different step counts: {lengths}"

    median = {label: statistics.median(values) for label, values in startup.items()}
    print(f"policy {POLICY.name}, Pong deterministic, image {docker.image}")
    print(f"start-up, one-step evaluation end to end, median of {args.repeats}:")
    for label, value in median.items():
        print(f"  {label:<18} {value:6.2f} s")
    overhead = median["docker"] - median["none"]
    verdict = "within" if overhead <= 0.5 else "OVER"
    print(f"  docker overhead    {overhead:6.2f} s per evaluation ({verdict} the 0.5 s target)")
    base = statistics.median(speed["in-process"])
    print(f"speed, {lengths.pop()} steps, median of {len(speed['in-process'])}:")
    for label, values in speed.items():
        value = statistics.median(values)
        print(f"  {label:<18} {value:8.0f} steps/s   {value / base:6.1%} of in-process")


if __name__ == "__main__":
    main()
