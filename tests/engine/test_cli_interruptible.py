"""`engine.interruptible.run_stoppable`: a signal stops the work, and only once it is stopped.

Real signals sent to this very process (our handler is installed while the work runs, so
pytest's own never sees them); every wait is for a condition, none for a duration.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from engine.interruptible import Interrupted, run_stoppable

DEADLINE_SECONDS = 60.0


def _signal_once_started(started: threading.Event, signum: int) -> threading.Thread:
    def send() -> None:
        if started.wait(DEADLINE_SECONDS):
            os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interruptible_signal_calls_on_stop_until_the_work_has_returned(
    signum: int, code: int
) -> None:
    started, release, returned = threading.Event(), threading.Event(), threading.Event()
    calls: list[int] = []

    def work() -> str:
        started.set()
        release.wait(DEADLINE_SECONDS)
        returned.set()
        return "finished"

    def on_stop() -> str:
        calls.append(1)
        if len(calls) == 3:  # like a sandbox that only appears after the first rounds
            release.set()
        return f"stopped after {len(calls)} calls"

    previous = signal.getsignal(signum)
    sender = _signal_once_started(started, signum)
    with pytest.raises(Interrupted) as caught:
        run_stoppable(work, on_stop, grace_seconds=DEADLINE_SECONDS)
    sender.join(DEADLINE_SECONDS)
    assert returned.is_set()  # not raised while the work was still running
    assert len(calls) >= 3 and caught.value.exit_code == code
    assert str(caught.value).startswith("stopped after ")
    assert signal.getsignal(signum) is previous  # our handler is gone again


def test_interruptible_without_signal_returns_the_result_and_errors() -> None:
    assert run_stoppable(lambda: 42, lambda: "unused") == 42

    def fails() -> None:
        raise ValueError("from the work")

    with pytest.raises(ValueError, match="from the work"):
        run_stoppable(fails, lambda: "unused")


def test_interruptible_overrides_an_inherited_ignore() -> None:
    """A process started with SIGINT ignored (a background job of a script) still stops."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        started, release = threading.Event(), threading.Event()

        def work() -> None:
            started.set()
            release.wait(DEADLINE_SECONDS)

        def on_stop() -> str:
            release.set()
            return "stopped"

        _signal_once_started(started, signal.SIGINT)
        with pytest.raises(Interrupted):
            run_stoppable(work, on_stop)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
