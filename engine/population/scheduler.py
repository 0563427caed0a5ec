"""Episodes as the unit of work: one queue for every episode of every candidate in flight.

    queue = EpisodeQueue(runner, done)          # `runner.slots` threads, one per sandbox slot
    queue.submit(priority, request, tag)        # done(tag, result_or_error) when it has ended

Smoke, training and held-out episodes of all candidates wait in one priority queue, and a slot
takes the next one the moment its last episode ends, so no core idles while an episode waits.
Lower priorities go first: the engine gives older candidates' episodes precedence, so the
candidates in flight finish (and are decided) in roughly the order they were proposed, instead
of many half-evaluated ones piling up.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.episodes import EpisodeRequest, EpisodeRunner
from sandbox.results import EpisodeResult

Done = Callable[[Any, "EpisodeResult | BaseException"], None]
_STOP = object()


@dataclass(order=True)
class _Job:
    priority: tuple[int, ...]
    sequence: int
    request: EpisodeRequest | None = field(compare=False)
    tag: Any = field(compare=False)


class EpisodeQueue:
    """Plays queued episodes on `runner`, `runner.slots` at a time, highest priority first.

    `done` is called from a slot's thread with the episode's result, or with the exception the
    runner raised (`RunnerClosed` once the run is stopping); it must not block for long.
    """

    def __init__(self, runner: EpisodeRunner, done: Done) -> None:
        self.runner = runner
        self._done = done
        self._jobs: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._closed = False
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._busy_seconds = 0.0
        self._busy_since: dict[int, float] = {}
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._serve, args=(slot,), name=f"episodes-{slot}", daemon=True)
            for slot in range(runner.slots)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def slots(self) -> int:
        return len(self._threads)

    def submit(self, priority: tuple[int, ...], request: EpisodeRequest, tag: Any) -> None:
        self._jobs.put(_Job(priority, next(self._sequence), request, tag))

    def waiting(self) -> int:
        return self._jobs.qsize()

    def busy_seconds(self) -> float:
        """Slot-seconds spent playing so far."""
        now = time.monotonic()
        with self._lock:
            return self._busy_seconds + sum(now - t for t in self._busy_since.values())

    def busy_fraction(self) -> float:
        """Slot-seconds spent playing over slot-seconds since the queue started."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return min(1.0, self.busy_seconds() / (elapsed * self.slots))

    def close(self) -> None:
        """Stop taking episodes (those waiting are dropped); threads end after the episode in
        hand (the runner's `close` cuts those short)."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(_Job((-1,), next(self._sequence), None, _STOP))

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _serve(self, slot: int) -> None:
        while True:
            job = self._jobs.get()
            if self._closed or job.request is None:
                return
            with self._lock:
                self._busy_since[slot] = time.monotonic()
            outcome: EpisodeResult | BaseException
            try:
                outcome = self.runner.run(job.request)
            except BaseException as error:  # RunnerClosed, a node lost for good, a bug
                outcome = error
            finally:
                with self._lock:
                    self._busy_seconds += time.monotonic() - self._busy_since.pop(slot)
            self._done(job.tag, outcome)


def candidates_to_keep(
    slots: int, proposal_seconds: float, slot_seconds_per_candidate: float, cap: int
) -> int:
    """How many candidates to keep in flight so no slot waits for a proposal (Little's law).

    The slots finish a candidate every `slot_seconds_per_candidate / slots` seconds, and each
    candidate spends `proposal_seconds` being proposed first: that many times more must be in
    the proposer's hands at once, plus one per slot being played and one spare. Between
    `slots + 1` and `cap` (an LLM endpoint's rate limit and memory are finite).
    """
    if slot_seconds_per_candidate <= 0:
        return max(slots + 1, min(cap, 2 * slots))
    proposing = math.ceil(slots * proposal_seconds / slot_seconds_per_candidate)
    return max(slots + 1, min(cap, proposing + slots + 1))
