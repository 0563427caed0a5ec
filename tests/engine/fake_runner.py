"""An `EpisodeRunner` that plays nothing: the loop's logic tested without a sandbox.

Each episode's return is a deterministic function of (program source, seed), and its length a
function of the env's step cap, so a run over this runner is reproducible and its budgets
count. A program containing `raise` "crashes"; one containing `FAKE_SCORE = <n>` scores n on
every seed (tests use it to steer selection), and `FAKE_HOLDOUT = <m>` makes it score m on
held-out seeds instead. `gate` lets a test hold episodes until it says
so, to observe what is in flight.
"""

from __future__ import annotations

import hashlib
import re
import threading

from sandbox.episodes import EpisodeRequest, RunnerClosed
from sandbox.results import EpisodeResult, Status

_FIXED = re.compile(r"FAKE_SCORE\s*=\s*(-?\d+(?:\.\d+)?)")
_HELD_OUT = re.compile(r"FAKE_HOLDOUT\s*=\s*(-?\d+(?:\.\d+)?)")
HOLDOUT_FIRST_SEED = 1000  # RunConfig's default: seeds from here are held-out seeds


def fake_return(source: str, seed: int) -> float:
    held_out = _HELD_OUT.search(source)
    if held_out and seed >= HOLDOUT_FIRST_SEED:
        return float(held_out.group(1))
    fixed = _FIXED.search(source)
    if fixed:
        return float(fixed.group(1))
    digest = hashlib.sha256(f"{seed}:{source}".encode()).digest()
    return float(int.from_bytes(digest[:2], "big") % 43 - 21)


class FakeRunner:
    """Thread-safe; records every request it was asked to play, in order."""

    name = "fake"

    def __init__(self, slots: int = 2) -> None:
        self._slots = slots
        self.requests: list[EpisodeRequest] = []
        self.running = 0
        self.peak_running = 0
        self.gate: threading.Semaphore | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def slots(self) -> int:
        return self._slots

    def run(self, request: EpisodeRequest) -> EpisodeResult:
        if self._closed.is_set():
            raise RunnerClosed("closed")
        with self._lock:
            self.requests.append(request)
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        try:
            if self.gate is not None:
                while not self.gate.acquire(timeout=0.05):
                    if self._closed.is_set():
                        raise RunnerClosed("closed")
            crashed = "raise " in request.source
            return EpisodeResult(
                seed=request.seed,
                status=Status.ERROR if crashed else Status.OK,
                episode_return=0.0 if crashed else fake_return(request.source, request.seed),
                length=1 if crashed else request.env.max_steps,
                error="RuntimeError: fake crash" if crashed else None,
                wall_seconds=0.0,
            )
        finally:
            with self._lock:
                self.running -= 1

    def close(self) -> None:
        self._closed.set()
