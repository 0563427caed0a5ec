"""Reaching a Ray cluster: import Ray lazily, connect, find the nodes, start one actor on each.

    nodes = cluster_report("127.0.0.1:6379")   # [{"node_id", "ip", "cores", "sandbox_works",
                                               #   "reason", ...}, ...] for `evocade doctor`

Ray is an optional extra: nothing here imports it at module level, and without it every entry
point raises `RayUnavailable` with the one line that says how to get it.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.errors import UserError
from sandbox.backends.base import Prepare
from sandbox.names import BackendName
from sandbox.settings import Limits

RAY_MISSING = "--executor ray needs: pip install -e '.[ray]'"
CONNECT_SECONDS = 10.0
START_SECONDS = 300.0  # a loaded node starting its actor and a first sandbox
WAIT_STEP_SECONDS = 1.0  # how often a wait for the nodes' actors looks whether to stop


class RayUnavailable(UserError):
    """Ray, the cluster or every node of it cannot be used; the message says why (one line)."""


def import_ray() -> Any:
    """The `ray` module, or RayUnavailable saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise RayUnavailable(RAY_MISSING) from None


def connect(address: str | None) -> tuple[Any, bool]:
    """Ray, connected to the cluster at `address` (None: RAY_ADDRESS, else a new Ray of this
    machine alone, on 127.0.0.1); True when this call connected (and so should shut down)."""
    ray = import_ray()
    target = address or os.environ.get("RAY_ADDRESS")
    if target is not None:
        _refuse_silent_address(target)  # ray.init would retry a dead address for minutes
    if ray.is_initialized():
        current = str(ray.get_runtime_context().gcs_address)
        if address is not None and _host_port(current) != _host_port(address):
            raise RayUnavailable(f"this process is connected to the Ray cluster at {current}")
        return ray, False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if target is None:
        options.update(include_dashboard=False)
    if target is None or _is_loopback(target):
        # Ray 2.60 rewrites a loopback address to the machine's outward one (so that other
        # machines could reach it) unless its multi-node switch is off; a cluster on 127.0.0.1
        # (scripts/ray-cluster.sh) is reached on 127.0.0.1, and no traffic leaves loopback.
        constants: Any = importlib.import_module("ray._private.ray_constants")
        constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, OSError) as error:
        where = f"at {address}" if address else "(a local one)"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RayUnavailable(f"cannot connect to the Ray cluster {where}: {first}") from None
    return ray, True


def _host_port(address: str) -> tuple[str, int | None]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return address.strip("[]"), None
    return host.strip("[]"), int(port)


def _refuse_silent_address(address: str) -> None:
    """RayUnavailable at once when nothing listens at `address` (or it is no host:port)."""
    host, port = _host_port(address)
    if port is None:
        raise RayUnavailable(f"not a Ray address (host:port): {address!r}")
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise RayUnavailable(
            f"nothing answers at {address} ({error.strerror or error}): is the cluster up?"
        ) from None


def _is_loopback(address: str) -> bool:
    host = _host_port(address)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ClusterNode:
    """A node as Ray lists it."""

    node_id: str
    ip: str
    cores: int
    alive: bool

    @property
    def label(self) -> str:
        """How results name the node that played them (`EpisodeResult.node`)."""
        return f"{self.ip}/{self.node_id[:12]}"


def cluster_nodes(ray: Any) -> list[ClusterNode]:
    """Every node the cluster knows, alive or not, with its CPU count (Ray's resources)."""
    nodes = []
    for entry in ray.nodes():
        resources = entry.get("Resources") or {}
        nodes.append(
            ClusterNode(
                node_id=str(entry["NodeID"]),
                ip=str(entry.get("NodeManagerAddress", "?")),
                cores=int(resources.get("CPU", 0)),
                alive=bool(entry.get("Alive")),
            )
        )
    return nodes


@dataclass
class StartedNode:
    """A node's actor once it answered (or why it did not), and the cores it holds there."""

    node: ClusterNode
    actor: Any
    status: dict[str, Any] = field(default_factory=dict)
    cores: int = 0  # of the node's cores, those this actor holds (0: the node's count)

    @property
    def ok(self) -> bool:
        return bool(self.status.get("ok"))

    @property
    def slots(self) -> int:
        return max(1, self.cores or self.node.cores)


def free_cores(ray: Any) -> dict[str, int]:
    """Each live node's cores that no Ray job holds now (node id -> count): what a new driver
    may take without waiting. Empty when this Ray cannot tell (every core then counts free)."""
    try:
        state: Any = importlib.import_module("ray._private.state")
        per_node = state.available_resources_per_node()
    except Exception:  # a developer API of Ray's: without it, assume nothing is held
        return {}
    return {str(node_id): int(res.get("CPU", 0)) for node_id, res in per_node.items()}


def start_workers(
    ray: Any,
    nodes: list[ClusterNode],
    backend: BackendName,
    limits: Limits,
    *,
    reserve: bool,
    prewarm: Prepare | None = None,
    take: dict[str, int] | None = None,
    wait_for_one: bool = False,
    first_wins: bool = False,
    stopped: Callable[[], bool] = lambda: False,
) -> list[StartedNode]:
    """One `NodeWorker` actor per node, pinned to it, each proving its sandbox starts.

    With `reserve` each actor holds `take[node_id]` of its node's cores (default: all of them;
    Ray resources) for as long as it lives, so that nothing else Ray schedules there competes
    with the sandboxes; without (a report) it holds none. Nodes sharing an IP (several on one
    machine) get disjoint cores, and so do drivers sharing a node (each pins its sandboxes past
    the cores already held there). With `wait_for_one`, when no actor has started within
    START_SECONDS (their cores held by other jobs), wait on until the first one does, or
    until `stopped()`. With `first_wins` the first usable one ends the wait (the others, still
    waiting for their cores, are dropped: `status["unneeded"]`)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from engine.executors.ray_node import NodeWorker

    remote = ray.remote(NodeWorker)
    offsets: dict[str, int] = {}
    started = []
    for node in nodes:
        cores = node.cores if take is None else take[node.node_id]
        offset = offsets.get(node.ip, 0)
        offsets[node.ip] = offset + node.cores
        held = max(0, node.cores - cores)  # by other drivers, most likely on the first cores
        actor = remote.options(
            num_cpus=cores if reserve else 0,
            max_concurrency=cores + 2,  # its episodes, plus status and close
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
        ).remote(
            backend,
            limits.model_dump_json(),
            max(1, cores),
            offset + held,
            prewarm.to_json() if prewarm is not None else None,
        )
        started.append(StartedNode(node, actor, cores=cores))
    _collect_statuses(
        ray, started, wait_for_one=wait_for_one, first_wins=first_wins, stopped=stopped
    )
    return started


def _collect_statuses(
    ray: Any,
    started: list[StartedNode],
    *,
    wait_for_one: bool,
    first_wins: bool,
    stopped: Callable[[], bool],
) -> None:
    """Each actor's status, as they answer; START_SECONDS for all of them, then (with
    `wait_for_one` and none usable yet) without a deadline for the first one, until `stopped`."""
    refs = {item.actor.status.remote(): item for item in started}
    pending = list(refs)
    deadline = time.monotonic() + START_SECONDS
    why = (
        f"its worker did not start within {START_SECONDS:.0f} s "
        "(are its cores held by another Ray job?)"
    )
    while pending and not stopped():
        if first_wins and any(item.ok for item in refs.values()):
            for ref in pending:
                refs[ref].status = {"ok": False, "reason": "not needed", "unneeded": True}
            return
        if time.monotonic() >= deadline and (
            not wait_for_one or any(item.ok for item in refs.values())
        ):
            break
        # Past the deadline with nothing usable: every core asked for is held by another job
        # (another driver), and the first one released is this run's.
        ready, pending = ray.wait(pending, num_returns=1, timeout=WAIT_STEP_SECONDS)
        for ref in ready:
            _read_status(ray, ref, refs[ref])
    if stopped():
        why = "stopped while waiting for its worker"
    for ref in pending:
        refs[ref].status = {"ok": False, "reason": why}


def _read_status(ray: Any, ref: Any, item: StartedNode) -> None:
    try:
        item.status = dict(ray.get(ref))
    except Exception as error:  # the actor died starting: its reason, in one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        item.status = {"ok": False, "reason": f"its worker failed: {first}"}


def stop_workers(ray: Any, started: list[StartedNode], timeout_seconds: float) -> None:
    """Ask each actor to destroy its sandboxes, then kill it."""
    refs = [item.actor.close.remote() for item in started]
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=timeout_seconds)
    for item in started:
        kill_actor(ray, item.actor)


def kill_actor(ray: Any, actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already dead, or its node is gone
        return


def cluster_report(
    address: str | None, backend: BackendName = "auto", limits: Limits | None = None
) -> list[dict[str, Any]]:
    """Each node of the cluster: id, ip, cores, alive, and whether its sandbox works (with the
    reason when not), proven by starting one sandbox there."""
    ray, connected = connect(address)
    try:
        nodes = cluster_nodes(ray)
        alive = [node for node in nodes if node.alive]
        started = start_workers(ray, alive, backend, limits or Limits(), reserve=False)
        stop_workers(ray, started, timeout_seconds=60.0)
        statuses = {item.node.node_id: item.status for item in started}
        # A node that died while being asked (its actor then "never ran") is reported dead:
        # Ray notices a lost node only after its health checks fail.
        still = {node.node_id for node in cluster_nodes(ray) if node.alive}
        nodes = [replace(node, alive=node.alive and node.node_id in still) for node in nodes]
        for node in nodes:
            if not node.alive:
                statuses.pop(node.node_id, None)
        report = []
        for node in nodes:
            status = statuses.get(node.node_id, {"ok": False, "reason": "the node is dead"})
            report.append(
                {
                    "node_id": node.node_id,
                    "ip": node.ip,
                    "cores": node.cores,
                    "alive": node.alive,
                    "sandbox_works": bool(status.get("ok")),
                    "backend": status.get("backend"),
                    "reason": str(status.get("reason", "")),
                }
            )
        return report
    finally:
        if connected:
            ray.shutdown()
