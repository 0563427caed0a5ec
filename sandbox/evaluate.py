"""The sandbox's one entry point: check a program, play it on a list of seeds, return a result.

    evaluate(source, "Pong", seeds=[0, 1, 2]) -> EvaluationResult

Seeds are split over workers (one per core by default); each worker is one sandbox running the
trusted harness, which plays its seeds one after another with a fresh policy process for each.
Whatever a worker sends back is parsed with caps and validated here before anyone trusts it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import ValidationError

from sandbox.backends.base import Backend, SandboxUnavailable, WorkerOutcome
from sandbox.checker import check_source
from sandbox.episodes import ColdRunner, EpisodeRequest, EpisodeRunner, usable_cpus
from sandbox.games import get_game
from sandbox.results import CheckReport, EpisodeResult, EvaluationResult, Status, worst
from sandbox.settings import EnvSettings, Limits

BackendName = Literal["auto", "bwrap", "docker", "none"]
STARTUP_ALLOWANCE_SECONDS = 60.0


def make_backend(name: BackendName, limits: Limits) -> Backend:
    """Build the named backend; `auto` prefers docker when an engine answers, then bwrap."""
    if name == "none":
        from sandbox.backends.local import LocalBackend

        return LocalBackend()
    if name == "docker" or name == "auto":
        try:
            from sandbox.backends.docker import DockerBackend

            return DockerBackend(limits)
        except (ImportError, SandboxUnavailable) as error:
            if name == "docker":
                raise SandboxUnavailable(str(error)) from error
            docker_reason = str(error)
    else:
        docker_reason = ""
    from sandbox.backends.bwrap import BwrapBackend

    try:
        return BwrapBackend(limits.sandbox_memory_mb, limits.pids, limits.tmpfs_mb)
    except SandboxUnavailable as error:
        if name == "auto":
            raise SandboxUnavailable(
                f"no sandbox available: docker: {docker_reason or 'not tried'}; bwrap: {error}"
            ) from error
        raise


def _split(seeds: list[int], workers: int) -> list[list[int]]:
    groups = [seeds[i::workers] for i in range(workers)]
    return [group for group in groups if group]


def _parse_worker(outcome: WorkerOutcome, seeds: list[int], limits: Limits) -> list[EpisodeResult]:
    """Validated episodes for these seeds; seeds the worker never reported become failures."""
    episodes: dict[int, EpisodeResult] = {}
    for line in outcome.stdout.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict) or data.get("done"):
            continue
        try:
            episode = EpisodeResult.model_validate(data)
        except ValidationError:
            continue
        if episode.seed in seeds and episode.seed not in episodes:
            if outcome.oom_killed and episode.status == Status.CRASHED:
                episode.status = Status.MEMORY
                episode.error = f"{episode.error}; the sandbox hit its memory limit"
            episodes[episode.seed] = episode
    missing = [seed for seed in seeds if seed not in episodes]
    for seed in missing:
        episodes[seed] = EpisodeResult(
            seed=seed,
            status=_worker_status(outcome),
            episode_return=0.0,
            length=0,
            error=_worker_error(outcome, limits),
            wall_seconds=0.0,
        )
    return [episodes[seed] for seed in seeds]


def _worker_status(outcome: WorkerOutcome) -> Status:
    if outcome.oom_killed:
        return Status.MEMORY
    if outcome.timed_out:
        return Status.TIMEOUT
    return Status.CRASHED


def _worker_error(outcome: WorkerOutcome, limits: Limits) -> str:
    if outcome.oom_killed:
        return f"the sandbox exceeded its {limits.sandbox_memory_mb} MB memory limit"
    if outcome.timed_out:
        return "the sandbox exceeded its wall-clock budget and was killed"
    code = outcome.exit_code
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    tail = outcome.stderr_tail.strip().splitlines()[-5:]
    return f"the sandbox died ({how}) before reporting this episode" + (
        ": " + " | ".join(tail) if tail else ""
    )


def run_seeds(
    backend: Backend, request: EpisodeRequest, seeds: list[int], cpu: int | None
) -> list[EpisodeResult]:
    """Play `seeds` one after another in one fresh sandbox; validated episodes, one per seed."""
    limits = request.limits
    payload = {
        "source": request.source,
        "restricted": request.restricted,
        "game": request.game,
        "env": request.env.model_dump(),
        "limits": limits.model_dump(),
        "seeds": seeds,
        "cpu": cpu,
    }
    wall = len(seeds) * (limits.episode_wall_seconds + 5.0) + STARTUP_ALLOWANCE_SECONDS
    outcome = backend.run_worker(json.dumps(payload).encode(), wall)
    return _parse_worker(outcome, seeds, limits)


def open_runner(
    backend: BackendName | Backend = "auto", limits: Limits | None = None, slots: int | None = None
) -> ColdRunner:
    """An episode runner over the named backend, for a whole run (use as a context manager)."""
    limits = limits or Limits()
    runner = make_backend(backend, limits) if isinstance(backend, str) else backend
    return ColdRunner(runner, slots)


def evaluation_from_episodes(
    game: str,
    env: EnvSettings,
    limits: Limits,
    backend: str,
    *,
    checked: bool,
    check: CheckReport | None,
    episodes: list[EpisodeResult],
    wall_seconds: float,
) -> EvaluationResult:
    """One evaluation from its episodes (in seed order); its status is the worst of theirs,
    or `rejected` when the static check refused the program (then there are no episodes)."""
    rejected = check is not None and not check.ok
    return EvaluationResult(
        game=game,
        env=env,
        limits=limits,
        backend=backend,
        checked=checked,
        status=Status.REJECTED if rejected else worst([e.status for e in episodes]),
        check=check,
        episodes=episodes,
        wall_seconds=round(wall_seconds, 3),
    )


def evaluate(
    source: str,
    game: str,
    *,
    seeds: list[int],
    env: EnvSettings | None = None,
    limits: Limits | None = None,
    backend: BackendName | Backend = "auto",
    check: bool = True,
    workers: int | None = None,
    pool: EpisodeRunner | None = None,
) -> EvaluationResult:
    """Check `source`, then play one episode per seed in the sandbox. Never runs it unchecked
    unless `check=False`; never runs it outside a sandbox unless `backend="none"`.

    With `pool`, every seed is one episode on the pool's sandboxes (`backend` and `workers`
    are then the pool's); without, the seeds are split over `workers` fresh sandboxes.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct ints, got {seeds!r}")
    env = env or EnvSettings()
    limits = limits or Limits()
    game_info = get_game(game)
    started = time.monotonic()
    report = check_source(source) if check else None
    if report is not None and not report.ok:  # never runs: no sandbox needed to say so
        name = pool.name if pool else backend if isinstance(backend, str) else backend.name
        return evaluation_from_episodes(
            game_info.name,
            env,
            limits,
            name,
            checked=True,
            check=report,
            episodes=[],
            wall_seconds=0.0,
        )
    template = EpisodeRequest(source, game_info.name, seeds[0], env, limits, restricted=check)
    if pool is not None:
        requests = [dataclasses.replace(template, seed=seed) for seed in seeds]
        with ThreadPoolExecutor(max_workers=min(pool.slots, len(seeds))) as threads:
            episodes = list(threads.map(pool.run, requests))
        name = pool.name
    else:
        runner = make_backend(backend, limits) if isinstance(backend, str) else backend
        workers = max(1, min(workers or os.cpu_count() or 1, len(seeds)))
        groups = _split(list(seeds), workers)
        cpus = usable_cpus()

        def run_group(index: int) -> list[EpisodeResult]:
            return run_seeds(runner, template, groups[index], cpus[index % len(cpus)])

        with ThreadPoolExecutor(max_workers=len(groups)) as threads:
            per_group = list(threads.map(run_group, range(len(groups))))
        by_seed = {episode.seed: episode for group in per_group for episode in group}
        episodes = [by_seed[seed] for seed in seeds]
        name = runner.name
    return evaluation_from_episodes(
        game_info.name,
        env,
        limits,
        name,
        checked=check,
        check=report,
        episodes=episodes,
        wall_seconds=time.monotonic() - started,
    )
