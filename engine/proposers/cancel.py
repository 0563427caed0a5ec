"""A cancel flag that a signal handler may set: what `LlmProposer.cancel()` raises."""

from __future__ import annotations

import contextlib
import os
import select
import weakref


class CancelFlag:
    """Set once, from any thread or from a signal handler; cuts `wait` short.

    A self-pipe rather than `threading.Event`: `Event.set()` takes the event's lock, which the
    main thread may hold at the very moment a signal handler interrupts it (inside
    `Event.wait`), and the handler would then wait for itself forever. Writing a byte to a
    non-blocking pipe takes no lock; `select` on the pipe wakes every waiter.
    """

    def __init__(self) -> None:
        self._set = False
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        weakref.finalize(self, _close_fds, self._read_fd, self._write_fd)

    def set(self) -> None:
        self._set = True
        with contextlib.suppress(OSError):  # full (already set many times): fine
            os.write(self._write_fd, b"x")

    def is_set(self) -> bool:
        return self._set

    def wait(self, seconds: float) -> None:
        if not self._set and seconds > 0:
            poller = select.poll()  # not select(): no limit on the descriptor's number
            poller.register(self._read_fd, select.POLLIN)
            poller.poll(seconds * 1000)


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
