"""The sandbox's one entry point: check a program, play it on a list of seeds, return a result.

    evaluate(source, "Pong", seeds=[0, 1, 2]) -> EvaluationResult
    evaluate(source, "Pong", seeds=[0, 1, 2], pool=runner)   # a run's warm sandboxes

Every seed is one episode in one sandbox of its own, at most one per core at a time. Whatever a
sandbox sends back is parsed with caps and validated before anyone trusts it (sandbox.pool).
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

from sandbox.backends.base import Backend, Prepare, SandboxUnavailable
from sandbox.checker import check_source
from sandbox.episodes import EpisodeRequest, EpisodeRunner
from sandbox.games import get_game
from sandbox.names import BackendName
from sandbox.pool import WarmPool
from sandbox.results import CheckReport, EpisodeResult, EvaluationResult, Status, worst
from sandbox.settings import EnvSettings, Limits


def make_backend(name: BackendName, limits: Limits) -> Backend:
    """Build the named backend; `auto` prefers docker when an engine answers, then bwrap."""
    from sandbox.backends.forked import ForkedBackend

    if name == "none":
        return ForkedBackend(None)
    docker_reason = ""
    if name in ("docker", "auto"):
        try:
            from sandbox.backends.docker import DockerBackend

            return DockerBackend(limits)
        except (ImportError, SandboxUnavailable) as error:
            if name == "docker":
                raise SandboxUnavailable(str(error)) from error
            docker_reason = str(error)
    from sandbox.backends.bwrap import BwrapBackend

    try:
        return ForkedBackend(BwrapBackend(limits.sandbox_memory_mb, limits.pids, limits.tmpfs_mb))
    except SandboxUnavailable as error:
        if name == "auto":
            raise SandboxUnavailable(
                f"no sandbox available: docker: {docker_reason or 'not tried'}; bwrap: {error}"
            ) from error
        raise


def open_runner(
    backend: BackendName | Backend = "auto",
    limits: Limits | None = None,
    slots: int | None = None,
    *,
    prewarm: Prepare | None = None,
) -> WarmPool:
    """A pool of warm sandboxes for a whole run (use as a context manager); `prewarm` starts
    every slot's first sandbox now, its emulator built for that setting."""
    if isinstance(backend, str):
        pool = WarmPool(make_backend(backend, limits or Limits()), slots)
    else:
        pool = WarmPool(backend, slots, owns_backend=False)
    if prewarm is not None:
        pool.prewarm(prewarm)
    return pool


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


@dataclasses.dataclass(frozen=True)
class EvaluationPlan:
    """A checked program's episodes, ready for any runner: what `evaluate` plays, for callers
    (the population engine) that schedule episodes of many evaluations on one runner."""

    game: str
    env: EnvSettings
    limits: Limits
    checked: bool
    check: CheckReport | None
    requests: list[EpisodeRequest]  # empty when the static check refused the program

    def result(
        self, backend: str, episodes: list[EpisodeResult], wall_seconds: float
    ) -> EvaluationResult:
        return evaluation_from_episodes(
            self.game,
            self.env,
            self.limits,
            backend,
            checked=self.checked,
            check=self.check,
            episodes=episodes,
            wall_seconds=wall_seconds,
        )


def plan_evaluation(
    source: str,
    game: str,
    *,
    seeds: list[int],
    env: EnvSettings | None = None,
    limits: Limits | None = None,
    check: bool | CheckReport = True,
) -> EvaluationPlan:
    """Check `source` (unless `check=False`; a `CheckReport` already made is reused) and make
    one episode request per seed; no requests when the check refused it."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct ints, got {seeds!r}")
    env = env or EnvSettings()
    limits = limits or Limits()
    name = get_game(game).name
    report = check if isinstance(check, CheckReport) else check_source(source) if check else None
    checked = report is not None
    if report is not None and not report.ok:  # never runs: no sandbox needed to say so
        return EvaluationPlan(name, env, limits, True, report, [])
    template = EpisodeRequest(source, name, seeds[0], env, limits, restricted=checked)
    requests = [dataclasses.replace(template, seed=seed) for seed in seeds]
    return EvaluationPlan(name, env, limits, checked, report, requests)


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

    With `pool` the episodes run on its warm sandboxes (`backend` and `workers` are then the
    pool's); without, a pool of `workers` sandboxes (default: one per seed, at most one per
    core) is made for this evaluation and closed after it.
    """
    started = time.monotonic()
    plan = plan_evaluation(source, game, seeds=seeds, env=env, limits=limits, check=check)
    if not plan.requests:
        name = pool.name if pool else backend if isinstance(backend, str) else backend.name
        return plan.result(name, [], 0.0)
    if pool is None:
        slots = min(workers or len(seeds), len(seeds))
        runner: EpisodeRunner = open_runner(backend, plan.limits, max(1, slots))
    else:
        runner = pool
    try:
        with ThreadPoolExecutor(max_workers=min(runner.slots, len(seeds))) as threads:
            episodes = list(threads.map(runner.run, plan.requests))
    finally:
        if pool is None:
            runner.close()
    return plan.result(runner.name, episodes, time.monotonic() - started)
