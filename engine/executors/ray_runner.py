"""Episodes on a Ray cluster: an `EpisodeRunner` whose slots are the cluster's cores.

    with open_ray_runner("127.0.0.1:6379", "bwrap", limits) as runner:   # one per run
        episode = runner.run(EpisodeRequest(...))    # from up to `runner.slots` threads

One actor per node (`engine.executors.ray_node.NodeWorker`, pinned there, holding the cores of
that node this runner took: those free when it opened, see `open_ray_runner`) keeps the node's
own warm sandboxes; `run` takes a free core anywhere in the cluster,
sends the request there as plain data and validates the JSON that comes back, as the local pool
does, then records which node played it (`EpisodeResult.node`). A node whose sandbox cannot
start is left out with its reason (`refused`); a node lost mid-episode loses that episode, which
is played again elsewhere (`on_node_lost` hears of it): nothing half-finished is ever
returned. With no node left, `run`
raises `RayUnavailable`. Ray is imported only when a runner is opened.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError

from engine.executors.ray_cluster import (
    ClusterNode,
    RayUnavailable,
    StartedNode,
    cluster_nodes,
    connect,
    free_cores,
    kill_actor,
    start_workers,
    stop_workers,
)
from engine.executors.ray_node import request_payload
from sandbox.backends.base import Prepare, SandboxUnavailable
from sandbox.episodes import EpisodeRequest, RunnerClosed
from sandbox.names import BackendName
from sandbox.pool import STARTUP_ALLOWANCE_SECONDS
from sandbox.results import EpisodeResult
from sandbox.settings import Limits

# Beyond the episode's own wall budget and the node's sandbox start-up: an answer later than
# this means the node no longer plays (it is then treated as lost).
NODE_ALLOWANCE_SECONDS = 2 * STARTUP_ALLOWANCE_SECONDS + 120.0
CLOSE_SECONDS = 60.0
POLL_SECONDS = 0.5  # how often a caller waiting for a free core looks whether any node is left


@dataclass
class _Node:
    node: ClusterNode
    actor: Any
    backend: str
    pid: int | None  # the actor's process on its node
    cores: int  # the node's cores this runner holds
    alive: bool = True

    @property
    def label(self) -> str:
        return self.node.label


@dataclass
class RayStats:
    """What the runner did about nodes: episodes played again after a node was lost."""

    requeued: int = 0
    lost: list[tuple[str, str]] = field(default_factory=list)  # (node label, why)


class _NodeLost(Exception):
    pass


class RayRunner:
    """An `EpisodeRunner` over a Ray cluster (see the module docstring)."""

    def __init__(self, ray: Any, started: list[StartedNode], *, owns_connection: bool) -> None:
        self._ray = ray
        self._owns_connection = owns_connection
        self._nodes = [
            _Node(
                item.node,
                item.actor,
                str(item.status.get("backend")),
                item.status.get("pid"),
                item.slots,
            )
            for item in started
        ]
        self._free: queue.SimpleQueue[_Node] = queue.SimpleQueue()
        for node in self._nodes:
            for _ in range(node.cores):
                self._free.put(node)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._closed = False
        self.stats = RayStats()
        self.refused: list[tuple[str, str]] = []  # (node label, why), filled by open_ray_runner
        self.cluster_cores = 0  # every live node's cores when the runner opened
        self.free_at_start = 0  # of those, the ones no other Ray job held then
        # Called with (node label, why) when a node is lost (its episodes are played again
        # elsewhere), from the thread whose episode found out: `evocade run` says so and
        # records it in the run's events.
        self.on_node_lost: Callable[[str, str], None] | None = None
        # Called with (node label, request) each time an episode is sent to a node: for
        # progress displays, and for the tests that lose a node while it plays.
        self.on_dispatch: Callable[[str, EpisodeRequest], None] | None = None

    @property
    def name(self) -> str:
        backends = sorted({node.backend for node in self._nodes})
        return "ray/" + "+".join(backends)

    @property
    def slots(self) -> int:
        """The cores of the nodes still alive (at least 1, so that callers never size a thread
        pool to zero; with no node left, `run` raises)."""
        with self._lock:
            return max(1, sum(n.cores for n in self._nodes if n.alive))

    @property
    def nodes(self) -> list[str]:
        """The labels of the nodes still playing."""
        with self._lock:
            return [node.label for node in self._nodes if node.alive]

    def run(self, request: EpisodeRequest) -> EpisodeResult:
        payload = request_payload(request)
        with self._lock:
            if self._closed:
                raise RunnerClosed("the Ray runner is closed")
            self._running += 1
        try:
            while True:
                node = self._take_core()
                try:
                    text = self._play(node, payload, request)
                except _NodeLost as lost:
                    self._lose(node, str(lost))
                    with self._lock:
                        self.stats.requeued += 1
                    continue
                finally:
                    if node.alive:
                        self._free.put(node)
                return self._validated(text, node, request.seed)
        finally:
            with self._lock:
                self._running -= 1
                self._idle.notify_all()

    def _take_core(self) -> _Node:
        """A free core on a live node (blocking), or why there is none."""
        while True:
            if self._closed:
                raise RunnerClosed("the Ray runner is closed")
            try:
                node = self._free.get(timeout=POLL_SECONDS)
            except queue.Empty:
                with self._lock:
                    if not any(item.alive for item in self._nodes):
                        raise RayUnavailable(self._nothing_left()) from None
                continue
            if node.alive:
                return node
            # a core of a lost node: dropped

    def _nothing_left(self) -> str:
        lost = "; ".join(f"{label}: {why}" for label, why in self.stats.lost)
        return f"no node of the Ray cluster is left to play episodes (lost {lost})"

    def _play(self, node: _Node, payload: dict[str, Any], request: EpisodeRequest) -> str:
        """The node's answer (the episode's JSON), `_NodeLost`, or the node's own error."""
        exceptions = self._ray.exceptions
        ref = node.actor.play.remote(payload)
        if self.on_dispatch is not None:
            self.on_dispatch(node.label, request)
        wait = request.limits.episode_wall_seconds + NODE_ALLOWANCE_SECONDS
        try:
            return str(self._ray.get(ref, timeout=wait))
        except exceptions.RayTaskError as error:  # raised by the actor's own code
            if self._closed or isinstance(error.cause, RunnerClosed):
                raise RunnerClosed("the Ray runner was closed during the episode") from None
            if isinstance(error.cause, SandboxUnavailable):
                raise SandboxUnavailable(f"node {node.label}: {error.cause}") from None
            raise RuntimeError(f"node {node.label} failed: {_first_line(error.cause)}") from None
        except (
            exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
            exceptions.NodeDiedError,
            exceptions.WorkerCrashedError,
            exceptions.ObjectLostError,
            exceptions.GetTimeoutError,
        ) as error:
            if self._closed:
                raise RunnerClosed("the Ray runner was closed during the episode") from None
            # A node that answers later than this no longer counts: `_lose` kills its actor
            # (and with it the episode), so it cannot answer after the replay.
            raise _NodeLost(f"{type(error).__name__}: {_first_line(error)}") from None

    def _lose(self, node: _Node, why: str) -> None:
        with self._lock:
            if not node.alive:
                return
            node.alive = False
            self.stats.lost.append((node.label, why))
        kill_actor(self._ray, node.actor)
        if self.on_node_lost is not None:
            self.on_node_lost(node.label, why)

    def _validated(self, text: str, node: _Node, seed: int) -> EpisodeResult:
        try:
            episode = EpisodeResult.model_validate_json(text)
        except ValidationError as error:
            raise RuntimeError(
                f"node {node.label} sent an episode that is not valid: {_first_line(error)}"
            ) from None
        if episode.seed != seed:
            raise RuntimeError(f"node {node.label} answered seed {episode.seed} for {seed}")
        episode.node = node.label
        return episode

    def close(self) -> None:
        """Destroy every node's sandboxes (episodes in flight end with RunnerClosed), stop the
        actors and, when this runner connected to Ray, disconnect."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            alive = [node for node in self._nodes if node.alive]
        stop_workers(
            self._ray,
            [StartedNode(node.node, node.actor, cores=node.cores) for node in alive],
            timeout_seconds=CLOSE_SECONDS,
        )
        with self._lock:  # the callers cut short have left before Ray is shut down
            self._idle.wait_for(lambda: self._running == 0, timeout=CLOSE_SECONDS)
        if self._owns_connection:
            self._ray.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def open_ray_runner(
    address: str | None,
    backend: BackendName,
    limits: Limits,
    *,
    prewarm: Prepare | None = None,
    slots: int | None = None,
    say: Callable[[str], None] | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> RayRunner:
    """A runner over the live nodes of the cluster at `address` that can start `backend`'s
    sandbox (`auto`, `bwrap` or `docker`; `none` only for tests of the plumbing). Nodes that
    cannot are listed in `runner.refused` with their reasons; when none can, RayUnavailable
    names each node's reason. Raises RayUnavailable when Ray is not installed or the cluster
    does not answer. `prewarm`, as for `sandbox.evaluate.open_runner`, has every node start
    each slot's first sandbox now, its emulator built for that setting.

    Drivers share a cluster: the runner takes the cores that no other Ray job holds when it
    opens (another `evocade run`'s, say), at most `slots` of them, busiest-free node first.
    When every core is held it asks for one on each node and waits, without a deadline, for
    the first to be released (`say` tells the user so) or until `stopped()` (a Ctrl-C); it
    never grows later."""
    ray, connected = connect(address)
    try:
        nodes = [node for node in cluster_nodes(ray) if node.alive and node.cores >= 1]
        if not nodes:
            raise RayUnavailable(
                f"the Ray cluster at {address or 'local'} has no live node with CPUs"
            )
        take, free_total = _share(nodes, free_cores(ray), slots)
        total = sum(node.cores for node in nodes)
        if say is not None and free_total < total:
            say(
                f"ray: {total - free_total} of the cluster's {total} cores are held by other "
                + (
                    f"jobs; taking {sum(take.values())} of the {free_total} free"
                    if free_total
                    else "jobs, all of them: waiting for one to be released"
                )
            )
        chosen = [node for node in nodes if take.get(node.node_id)]
        started = start_workers(
            ray,
            chosen,
            backend,
            limits,
            reserve=True,
            prewarm=prewarm,
            take=take,
            wait_for_one=True,
            first_wins=free_total == 0,
            stopped=stopped,
        )
    except BaseException:
        if connected:
            ray.shutdown()
        raise
    usable = [item for item in started if item.ok]
    refused = [
        (item.node.label, str(item.status.get("reason", "")))
        for item in started
        if not item.ok and not item.status.get("unneeded")
    ]
    for item in started:
        if not item.ok:
            kill_actor(ray, item.actor)
    if not usable:
        if connected:
            ray.shutdown()
        reasons = "; ".join(f"{label}: {why}" for label, why in refused)
        raise RayUnavailable(f"no node of the Ray cluster can run {backend} sandboxes ({reasons})")
    runner = RayRunner(ray, usable, owns_connection=connected)
    runner.refused = refused
    runner.cluster_cores = total
    runner.free_at_start = free_total
    return runner


def _share(
    nodes: list[ClusterNode], free: dict[str, int], slots: int | None
) -> tuple[dict[str, int], int]:
    """How many cores to take on each node (node id -> count; nodes left out take none), and
    how many were free in all: the free ones, up to `slots`, from the node with most free on;
    with none free, one on every node (the first released wins)."""
    available = {n.node_id: max(0, min(n.cores, free.get(n.node_id, n.cores))) for n in nodes}
    free_total = sum(available.values())
    if free_total == 0:
        return {node.node_id: 1 for node in nodes[: slots or len(nodes)]}, 0
    want = free_total if slots is None else min(slots, free_total)
    take: dict[str, int] = {}
    for node in sorted(nodes, key=lambda n: -available[n.node_id]):
        count = min(available[node.node_id], want - sum(take.values()))
        if count > 0:
            take[node.node_id] = count
    return take, free_total
