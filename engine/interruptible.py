"""Run blocking work so that Ctrl-C (or SIGTERM) stops it within seconds.

The work runs in a worker thread; the main thread only waits, in short slices, so a signal is
noticed at once. On a signal, `on_stop` runs (close the episode runner, kill the sandboxes),
the worker gets a grace period to notice, and `Interrupted` is raised with the exit code
(130 for SIGINT, 143 for SIGTERM). A worker that is still stuck after the grace period cannot
be stopped from Python, so the process then exits at once: an interrupt never waits for an
episode to end. A second signal during the cleanup exits at once too.

Our own handlers are installed for the duration, whatever the inherited disposition: a process
started in the background of a script inherits SIGINT ignored, and `kill -INT` must still stop
it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TypeVar

_T = TypeVar("_T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 10.0
POLL_SECONDS = 0.25


class Interrupted(Exception):
    """The work was stopped by a signal; `exit_code` is 128 + its number."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class _StopFlag:
    """Set by our signal handler, which only records the signal and returns.

    It must not raise: on Python 3.11 an exception raised into `Thread.join()` from a signal
    handler marks the still-running thread as stopped (bpo-45274's cleanup releases the
    thread's own lock), so `is_alive()` would lie and the process would hang at exit waiting
    for it. The main thread instead waits on an Event in short slices and reads this flag.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum


def _exit_now(signum: int, _frame: FrameType | None = None) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(128 + signum)


@contextlib.contextmanager
def _handlers(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_stoppable(
    work: Callable[[], _T],
    on_stop: Callable[[], str],
    *,
    grace_seconds: float = GRACE_SECONDS,
) -> _T:
    """`work()`'s result, or `Interrupted` (message: what `on_stop` last returned) on a signal.

    `on_stop` must be idempotent: it is called until the worker has returned.

    Exceptions raised by `work` are re-raised here. Outside the main thread (where no signal
    handler can be installed) `work` simply runs.
    """
    if threading.current_thread() is not threading.main_thread():
        return work()
    outcome: dict[str, object] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the main thread as is
            outcome["error"] = error
        finally:
            finished.set()

    worker = threading.Thread(target=target, name="evocade-work", daemon=True)
    stop = _StopFlag()
    with _handlers(stop.handler):
        worker.start()
        while stop.signum is None and not finished.wait(POLL_SECONDS):
            pass
    if stop.signum is not None:
        with _handlers(_exit_now):
            # Again and again until the worker returns: a sandbox being started at the moment
            # of the signal appears only after the first round.
            message = on_stop()
            deadline = time.monotonic() + grace_seconds
            while not finished.wait(POLL_SECONDS) and time.monotonic() < deadline:
                message = on_stop()
            if not finished.is_set():
                print(f"interrupted: {message}", file=sys.stderr)
                _exit_now(stop.signum)
        raise Interrupted(stop.signum, message)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def child_pids() -> list[int]:
    """This process's direct children (the sandboxes it started, each in its own session)."""
    me = os.getpid()
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            children.append(int(entry.name))
    return children


def kill_children() -> list[int]:
    """SIGKILL every child and, for a child that leads its own process group (how the
    backends start sandboxes), that whole group; returns the children's pids.

    bwrap dies with its parent's death signal inside (`--die-with-parent`), so killing the
    outer process ends the sandbox; the backend's own cleanup (cgroups) then runs in the
    worker thread as the episode returns.
    """
    children = child_pids()
    for pid in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    return children


def kill_own_containers() -> list[str]:
    """Kill the Docker sandboxes this process started (found by their creator label);
    returns their ids."""
    try:
        from sandbox.backends.docker import LABEL, LABEL_PID
        from sandbox.backends.docker_image import connect_engine

        client = connect_engine(timeout_seconds=5)
    except Exception:  # no engine, no SDK: then there is nothing of ours to kill
        return []
    killed: list[str] = []
    try:
        filters = {"label": [f"{LABEL}=1", f"{LABEL_PID}={os.getpid()}"]}
        for info in client.api.containers(filters=filters):
            with contextlib.suppress(Exception):
                client.api.kill(info["Id"])
                killed.append(str(info["Id"]))
    except Exception:  # the engine went away meanwhile: nothing more we can do from here
        pass
    finally:
        client.close()
    return killed
