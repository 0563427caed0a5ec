"""What the engine tells whoever watches it, and how it is told to stop."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class LoopState:
    """A snapshot of the run for reporters (rebuilt from storage on resume)."""

    run_id: str
    iteration: int = 0  # proposals decided
    env_steps: int = 0  # every step played, smoke, training and held-out
    tokens: int = 0
    cost: float = 0.0
    in_flight: int = 0
    busy: float = 0.0  # fraction of sandbox slot time spent playing, this invocation
    started: float = field(default_factory=time.monotonic)
    env_steps_start: int = 0  # what earlier invocations played
    iteration_start: int = 0

    @property
    def env_steps_here(self) -> int:
        return self.env_steps - self.env_steps_start

    @property
    def iteration_here(self) -> int:
        return self.iteration - self.iteration_start


@dataclass(frozen=True)
class IterationReport:
    iteration: int
    program_id: str | None
    status: str  # the candidate's evaluation status, or "no_program"
    mean_return: float | None
    best_mean: float | None  # the run's best, on the training seeds
    head_id: str | None
    note: str
    island: int = 0
    holdout_mean: float | None = None  # the candidate's held-out score, if it was played
    best_holdout: float | None = None  # the run's best, on the held-out seeds


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    reason: str
    best_program_id: str | None
    best_mean: float | None
    iterations: int
    best_holdout_mean: float | None = None
    env_steps: int = 0
    wall_seconds: float = 0.0
    slot_busy: float = 0.0  # fraction of sandbox slot time spent playing episodes, this invocation


class Reporter(Protocol):
    def iteration(self, report: IterationReport, state: LoopState) -> None: ...

    def message(self, text: str) -> None: ...


class SilentReporter:
    def iteration(self, report: IterationReport, state: LoopState) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class StopRequest:
    """Set by SIGINT/SIGTERM. The first request stops proposing and lets the evaluations in
    flight finish and be recorded; a second one abandons them (they resume with --resume)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.count = 0
        self._event = threading.Event()

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.count += 1
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: Any) -> None:
            self.request(f"received {signal.Signals(signum).name}")

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)
