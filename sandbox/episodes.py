"""One episode in a sandbox: the unit of work the engine schedules.

    with open_runner("bwrap", limits) as runner:      # one per run; `runner.slots` at once
        episode = runner.run(EpisodeRequest(source, "Pong", seed=0, env=env, limits=limits))

A runner is called from up to `slots` threads at once; each `run` blocks until its episode has
ended one way or another and returns a validated `EpisodeResult` (it never raises for what the
policy does). The static check is not the runner's business: the caller checks once per program
(`sandbox.checker.check_source`) and says with `restricted` whether the program then runs under
the RestrictedPython guards.
"""

from __future__ import annotations

import os
import queue
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from sandbox.backends.base import Backend
from sandbox.results import EpisodeResult
from sandbox.settings import EnvSettings, Limits


@dataclass(frozen=True)
class EpisodeRequest:
    """Everything one episode needs, as plain data (it crosses process and machine borders)."""

    source: str
    game: str
    seed: int
    env: EnvSettings
    limits: Limits
    restricted: bool = True  # the program passed the checker and runs under its guards


class RunnerClosed(RuntimeError):
    """The runner was closed (the run is stopping): the episode was not played to its end and
    must not be recorded."""


class EpisodeRunner(Protocol):
    """Plays episodes in sandboxes; thread-safe; `slots` episodes at once."""

    @property
    def name(self) -> str:
        """The backend that plays the episodes, recorded with every evaluation."""
        ...

    @property
    def slots(self) -> int:
        """How many episodes it plays at once (one per core it may use)."""
        ...

    def run(self, request: EpisodeRequest) -> EpisodeResult:
        """Play one episode; raises `RunnerClosed` once `close()` has been called (episodes in
        flight are cut short), never for anything the policy does."""
        ...

    def close(self) -> None:
        """Stop: kill every sandbox, in flight or warm; later `run` calls raise RunnerClosed."""
        ...


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


class CpuSlots:
    """Hands out one CPU per concurrent episode, so each sandbox gets a core of its own.

    Harness and policy talk once per step: on one core a round trip costs ~8 us, across cores
    ~90 us (docs/DESIGN.md, machine facts), so every sandbox is pinned to the core it holds.
    """

    def __init__(self, cpus: list[int], slots: int) -> None:
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(slots):
            self._free.put(cpus[index % len(cpus)])

    def acquire(self) -> int:
        return self._free.get()

    def release(self, cpu: int) -> None:
        self._free.put(cpu)


class ColdRunner:
    """Starts a fresh sandbox for every episode: no pool, full start-up cost each time."""

    def __init__(self, backend: Backend, slots: int | None = None) -> None:
        cpus = usable_cpus()
        self.backend = backend
        self._slots = max(1, slots or len(cpus))
        self._cpus = CpuSlots(cpus, self._slots)
        self._closed = False

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def slots(self) -> int:
        return self._slots

    def run(self, request: EpisodeRequest) -> EpisodeResult:
        from sandbox.evaluate import run_seeds

        if self._closed:
            raise RunnerClosed("the episode runner is closed")
        cpu = self._cpus.acquire()
        try:
            return run_seeds(self.backend, request, [request.seed], cpu)[0]
        finally:
            self._cpus.release(cpu)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
