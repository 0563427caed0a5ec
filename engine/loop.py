"""The optimization loop: propose → check → evaluate → record → feedback → select, concurrently.

    outcome = optimize(store, config, proposer)                    # a new run
    outcome = optimize(store, config, proposer, run_id=...)        # resume a killed one

Up to K candidates are in flight at once (`config.in_flight`), their episodes queued on one
pool of warm sandboxes, one per core (engine.population). Every step lands in storage as it
happens, so a run killed at any moment resumes from what was committed (engine.population.resume)
and nothing committed is played twice. `runner` injects where episodes are played: by default
this machine's sandboxes (`config.sandbox`), a Ray cluster with `config.executor == "ray"`, or
anything implementing `sandbox.episodes.EpisodeRunner` (tests use a fake one). With
`--concurrency 1 --islands 1 --holdout-episodes 0` the loop makes exactly the sequential loop's
decisions (the paper's follow-with-rollback rule, greedy for the mutator).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from engine.config import RunConfig, config_changes, config_in_force
from engine.formatting import number
from engine.population.engine import Population
from engine.population.progress import (
    IterationReport,
    LoopState,
    Reporter,
    RunOutcome,
    SilentReporter,
    StopRequest,
)
from engine.population.resume import LoggedEvent, NumberedProgram, fold
from engine.proposers.base import Proposer
from engine.selection import run_best
from sandbox.episodes import EpisodeRunner
from sandbox.games import Game, get_game
from storage import Store
from storage.errors import StorageError

if TYPE_CHECKING:
    from engine.executors import RayRunner
    from sandbox.backends.base import Prepare

__all__ = ["IterationReport", "LoopState", "RunOutcome", "StopRequest", "optimize"]

LEASE_TTL_SECONDS = 60.0


def optimize(
    store: Store,
    config: RunConfig,
    proposer: Proposer,
    *,
    run_id: str | None = None,
    seed_program: str | None = None,
    reporter: Reporter | None = None,
    stop: StopRequest | None = None,
    runner: EpisodeRunner | None = None,
) -> RunOutcome:
    """Run (or resume) an optimization until its iterations are decided, a budget, or a stop."""
    reporter = reporter or SilentReporter()
    stop = stop if stop is not None else StopRequest()
    game = get_game(config.game)
    # A cluster is reached before the run exists: one that cannot be used (no Ray, nothing at
    # the address, no node with a sandbox) leaves no run behind, as any other bad input.
    ray = runner is None and config.executor == "ray"
    cluster = _open_ray(config, reporter, stop) if ray else None
    try:
        return _optimize(
            store, config, game, proposer, run_id, seed_program, reporter, stop, runner, cluster
        )
    finally:
        if cluster is not None:
            cluster.close()


def _optimize(
    store: Store,
    config: RunConfig,
    game: Game,
    proposer: Proposer,
    run_id: str | None,
    seed_program: str | None,
    reporter: Reporter,
    stop: StopRequest,
    runner: EpisodeRunner | None,
    cluster: RayRunner | None,
) -> RunOutcome:
    if run_id is None:
        run = store.create_run(game.name, config.full_env().model_dump(), config.to_json())
    else:
        run = store.resolve_run(run_id)  # a unique prefix is enough
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    store.acquire_lease(run.id, holder, LEASE_TTL_SECONDS)
    try:
        if cluster is not None:
            _watch_cluster(store, run.id, cluster, reporter)
            runner = cluster
        with _heartbeat(store, run.id, holder, stop), episode_runner(config, runner) as episodes:
            engine = Population(store, config, game, proposer, episodes, reporter, stop, run.id)
            try:
                _begin(engine, store, run_id is not None, seed_program, reporter)
                reason = engine.run()
            finally:
                engine.close()
        return _finish(engine, reason, reporter)
    except BaseException as error:
        if not isinstance(error, KeyboardInterrupt):
            _mark_failed(store, run.id, error)
        raise
    finally:
        store.release_lease(run.id, holder)


def _begin(
    engine: Population, store: Store, resuming: bool, seed_program: str | None, reporter: Reporter
) -> None:
    from engine.seeds import seed_source

    run_id, game = engine.run_id, engine.game
    seed = next((p for p in store.history(run_id) if p.origin == "seed"), None)
    if not resuming or seed is None:
        source = seed_program if seed_program is not None else seed_source(game.name)
        program = store.add_program(
            run_id, source, origin="seed", generation=0, note="starter policy"
        )
        if not resuming:
            engine.start(program.id, source)
            return
        seed_id = program.id
    else:
        seed_id = seed.program_id
    run = store.get_run(run_id)
    if run.status == "running":
        store.add_event(
            run_id, "crash_recovery", "the previous process ended without stopping the run"
        )
    resumes = [e.data or {} for e in store.events(run_id) if e.kind == "run_resumed"]
    changed = config_changes(config_in_force(run.config, resumes), engine.config)
    store.set_status(run_id, "running", "resumed", config_changed=changed)
    events = [LoggedEvent(e.kind, e.data) for e in store.events(run_id)]
    programs = [
        NumberedProgram(pid, island or 0, number, parent)
        for pid, island, number, parent in store.numbered_programs(run_id)
    ]
    position = fold(events, programs)
    engine.resume(position, seed_id, store.get_program(seed_id).source)
    decided = engine.state.iteration  # iterations decided so far; the next is numbered + 1
    reporter.message(
        f"resuming run {run_id[:8]} at iteration {decided + 1} ({decided} decided, "
        f"{len(position.in_flight)} in flight, {len(position.to_propose)} to propose again)"
    )


@contextmanager
def episode_runner(config: RunConfig, injected: EpisodeRunner | None) -> Iterator[EpisodeRunner]:
    """The run's episode runner: injected (the caller closes it), or opened here and closed."""
    if injected is not None:
        yield injected
        return
    from sandbox.evaluate import open_runner

    runner = open_runner(config.sandbox, config.limits(), prewarm=_prepare(config))
    try:
        yield runner
    finally:
        runner.close()


def _prepare(config: RunConfig) -> Prepare:
    """What every slot's first sandbox is built for: the run's game, setting and seeds."""
    from sandbox.backends.base import Prepare

    env = config.full_env()
    return Prepare(
        get_game(config.game).name,
        env.frameskip,
        env.repeat_action_probability,
        tuple(config.seeds),
    )


def _open_ray(config: RunConfig, reporter: Reporter, stop: StopRequest) -> RayRunner:
    """The run's runner over the Ray cluster (`--executor ray`), taking the cores free now."""
    from engine.executors import open_ray_runner

    return open_ray_runner(
        config.ray_address,
        config.sandbox,
        config.limits(),
        prewarm=_prepare(config),
        slots=config.ray_slots,
        say=reporter.message,
        stopped=lambda: bool(stop),
    )


def _watch_cluster(store: Store, run_id: str, cluster: RayRunner, reporter: Reporter) -> None:
    """Say and record (the run's events) what the run got of the cluster, each node that
    refused (no working sandbox), and from now on each node lost mid-run. Node reasons come
    from the nodes: the reporter escapes them, and the database keeps them as data."""
    nodes = cluster.nodes
    summary = (
        f"ray: {cluster.slots} cores on {len(nodes)} nodes "
        f"({cluster.free_at_start} of the cluster's {cluster.cluster_cores} were free)"
    )
    reporter.message(summary)
    data = {"nodes": nodes, "cores": cluster.slots, "free": cluster.free_at_start}
    store.add_event(run_id, "ray_cluster", summary, {**data, "total": cluster.cluster_cores})
    for label, why in cluster.refused:
        reporter.message(f"ray: node {label} refused: {why}")
        store.add_event(
            run_id,
            "ray_node_refused",
            f"node {label} refused: {why}"[:500],
            {
                "node": label,
                "reason": why,
            },
        )

    def lost(label: str, why: str) -> None:
        reporter.message(f"ray: node {label} lost ({why}); its episodes are played elsewhere")
        try:
            store.add_event(
                run_id,
                "ray_node_lost",
                f"node {label} lost: {why}"[:500],
                {
                    "node": label,
                    "reason": why,
                },
            )
        except StorageError as error:  # the replay matters more than its record: said, not raised
            reporter.message(f"ray: the loss of node {label} was not recorded: {error}")

    cluster.on_node_lost = lost


@contextmanager
def _heartbeat(store: Store, run_id: str, holder: str, stop: StopRequest) -> Iterator[None]:
    """Renew the run's lease every quarter of its ttl; a lost lease stops the run."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(LEASE_TTL_SECONDS / 4):
            try:
                store.renew_lease(run_id, holder, LEASE_TTL_SECONDS)
            except StorageError as error:
                stop.request(f"lease lost: {error}")
                return

    thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _finish(engine: Population, reason: str, reporter: Reporter) -> RunOutcome:
    store, run_id, config = engine.store, engine.run_id, engine.config
    if reason == "iterations":
        store.set_status(run_id, "finished", f"{config.iterations} iterations done")
    elif reason.startswith("failed"):
        store.set_status(run_id, "failed", reason[:500])
    else:
        store.set_status(run_id, "stopped", reason)
    best = run_best(engine.islands)
    held = (
        f", held-out {number(best.holdout_mean)}" if best and best.holdout_mean is not None else ""
    )
    reporter.message(
        f"run {run_id[:8]} {reason}: best program {best.program_id[:8] if best else '-'} "
        f"with mean return {number(best.train_mean if best else None)}{held}"
    )
    return RunOutcome(
        run_id,
        reason,
        best.program_id if best else None,
        best.train_mean if best else None,
        engine.state.iteration,
        best.holdout_mean if best else None,
        engine.state.env_steps,
        round(engine.wall_seconds(), 3),
        round(engine.episodes.busy_fraction(), 3),
    )


def _mark_failed(store: Store, run_id: str, error: BaseException) -> None:
    """A run that ends on an error says so (best effort: the error may be the database's)."""
    with contextlib.suppress(Exception):  # the original error is what the caller must see
        store.set_status(run_id, "failed", f"{type(error).__name__}: {error}"[:500])
