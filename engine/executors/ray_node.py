"""What runs on each node of a Ray cluster: one actor holding that node's warm sandboxes.

    worker = NodeWorker("bwrap", limits_json, cores=4, cpu_offset=0, prewarm=None)  # on its node
    worker.status()   -> {"ok": True, "reason": "", "node_id": ..., "ip": ..., "cores": 4}
    worker.play({"source": ..., "game": "Pong", "seed": 0, ...})  -> the EpisodeResult as JSON

The actor is trusted code: it only starts sandboxes (`sandbox.pool.WarmPool` over the node's
own backend) and passes them plain data; the program it is sent runs inside the sandbox, never
in this process. A node whose sandbox cannot start says so in `status()` and refuses every
episode: nothing runs unsandboxed because a node lacks bubblewrap or docker. This module is
imported by Ray on the nodes; it needs Ray only for the node's identity.
"""

from __future__ import annotations

import os
from typing import Any

from sandbox.backends.base import Prepare, SandboxUnavailable
from sandbox.episodes import EpisodeRequest, usable_cpus
from sandbox.evaluate import BackendName, make_backend
from sandbox.pool import READY_SECONDS, WarmPool
from sandbox.settings import EnvSettings, Limits


def request_payload(request: EpisodeRequest) -> dict[str, Any]:
    """An episode request as plain data (what crosses to the node)."""
    return {
        "source": request.source,
        "game": request.game,
        "seed": request.seed,
        "env": request.env.model_dump(mode="json"),
        "limits": request.limits.model_dump(mode="json"),
        "restricted": request.restricted,
    }


def request_from_payload(payload: dict[str, Any]) -> EpisodeRequest:
    """The request back, validated (settings and limits through their models)."""
    return EpisodeRequest(
        source=str(payload["source"]),
        game=str(payload["game"]),
        seed=int(payload["seed"]),
        env=EnvSettings.model_validate(payload["env"]),
        limits=Limits.model_validate(payload["limits"]),
        restricted=bool(payload["restricted"]),
    )


class NodeRefused(RuntimeError):
    """This node cannot run sandboxes; the message says why."""


class NodeWorker:
    """One per node (see the module docstring); Ray calls its methods from several threads."""

    def __init__(
        self,
        backend: BackendName,
        limits_json: str,
        cores: int,
        cpu_offset: int = 0,
        prewarm: dict[str, Any] | None = None,
    ) -> None:
        import ray

        context = ray.get_runtime_context()
        self.node_id: str = context.get_node_id()
        self.ip: str = ray.util.get_node_ip_address()
        self.cores = cores
        self.pool: WarmPool | None = None
        self.reason = ""
        try:
            limits = Limits.model_validate_json(limits_json)
            self.pool = _start_pool(backend, limits, cores, cpu_offset)
            if prewarm is not None:  # every slot's first sandbox, built for the run's game
                self.pool.prewarm(Prepare(**{**prewarm, "seeds": tuple(prewarm["seeds"])}))
        except (SandboxUnavailable, OSError) as error:
            self.reason = str(error) or type(error).__name__

    def status(self) -> dict[str, Any]:
        """Whether this node's sandbox works, and the node's identity."""
        return {
            "ok": self.pool is not None,
            "reason": self.reason,
            "node_id": self.node_id,
            "ip": self.ip,
            "cores": self.cores,
            "pid": os.getpid(),
            "backend": self.pool.name if self.pool is not None else None,
        }

    def play(self, payload: dict[str, Any]) -> str:
        """Play one episode in a warm sandbox; the validated result as JSON."""
        if self.pool is None:
            raise NodeRefused(f"node {self.ip} cannot run sandboxes: {self.reason}")
        episode = self.pool.run(request_from_payload(payload))
        return episode.model_dump_json(by_alias=True)

    def close(self) -> None:
        """Destroy every sandbox of this node, in flight or warm."""
        if self.pool is not None:
            self.pool.close()


def _start_pool(backend: BackendName, limits: Limits, cores: int, cpu_offset: int) -> WarmPool:
    """The node's pool, after proving that one sandbox starts and gets ready.

    The pool pins its slots to the machine's cores from `cpu_offset` on: on a machine that
    hosts several nodes (a local test cluster) each node gets cores of its own rather than all
    of them piling on the first ones. The pool reads the calling thread's affinity when it is
    built, so that is narrowed for the moment of construction only."""
    pool_backend = make_backend(backend, limits)
    probe = pool_backend.start_sandbox(None, None)
    try:
        if not probe.wait_ready(READY_SECONDS):
            pool_backend.close()
            raise SandboxUnavailable(
                f"a {pool_backend.name} sandbox did not start (it died, or was not ready "
                f"within {READY_SECONDS:.0f} s)"
            )
    finally:
        probe.destroy()
    before = usable_cpus()
    cpus = {before[(cpu_offset + index) % len(before)] for index in range(max(1, cores))}
    os.sched_setaffinity(0, cpus)
    try:
        return WarmPool(pool_backend, slots=cores)
    finally:
        os.sched_setaffinity(0, before)
