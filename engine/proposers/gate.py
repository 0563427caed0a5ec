"""One rate-limit gate per proposer, shared by every thread that calls it.

A 429 says the account is over its rate, not that one request was unlucky: if only the thread
that got it backed off, the others would keep hammering and collect 429s of their own. So a
429 closes the gate for everybody: no attempt of any thread is sent before the gate reopens
(the server's Retry-After, or a pause that doubles with each 429 in a row, across threads,
until an answer comes back). Retries that were already waiting on their own backoff wait for
the gate too.

Pure bookkeeping under a lock, with an injectable clock, so the rule is tested without HTTP.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


class RateGate:
    def __init__(
        self,
        *,
        base_seconds: float,
        cap_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._open_at = float("-inf")
        self._limited_in_a_row = 0

    @property
    def open_at(self) -> float:
        """When (on the gate's clock) the next attempt may be sent."""
        with self._lock:
            return self._open_at

    @property
    def limited_in_a_row(self) -> int:
        with self._lock:
            return self._limited_in_a_row

    def remaining_seconds(self) -> float:
        return max(self.open_at - self._clock(), 0.0)

    def rate_limited(self, retry_after_seconds: float | None) -> float:
        """Close the gate after a 429; returns the pause it imposes, in seconds.

        With Retry-After: that many seconds (capped). Without: "equal jitter", uniform in
        [c/2, c] for c = min(cap, base * 2**n), n the 429s in a row before this one, so the
        gate always pauses (full jitter could pick 0) and concurrent callers spread out.
        """
        with self._lock:
            if retry_after_seconds is not None:
                pause = min(max(retry_after_seconds, 0.0), self.cap_seconds)
            else:
                ceiling = min(self.cap_seconds, self.base_seconds * 2**self._limited_in_a_row)
                pause = self._rng.uniform(ceiling / 2, ceiling)
            self._limited_in_a_row += 1
            self._open_at = max(self._open_at, self._clock() + pause)
            return pause

    def answered(self) -> None:
        """A request got through: the next 429 starts the doubling afresh."""
        with self._lock:
            self._limited_in_a_row = 0
