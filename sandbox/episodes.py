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
from dataclasses import dataclass
from typing import Protocol

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
