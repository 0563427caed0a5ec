"""What every isolation backend provides: run one harness worker, and say how it ended.

A backend knows how to wrap `python -m sandbox.runtime.harness` in walls (namespaces, a
container, nothing). It does not interpret results: it hands back the raw, size-capped stdout
and the facts about how the worker ended, each its own field.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import IO, Protocol

MAX_RESULT_BYTES = 32 << 20  # all episodes of one worker, traces included
STDERR_TAIL_BYTES = 4096


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be set up here; the message says why and how to fix it."""


@dataclass(frozen=True)
class WorkerOutcome:
    stdout: bytes
    stderr_tail: str
    exit_code: int | None  # negative: killed by that signal; None: never started
    timed_out: bool = False
    oom_killed: bool = False
    stdout_truncated: bool = False
    peak_memory_mb: float | None = None


class Backend(Protocol):
    name: str

    def run_worker(self, request: bytes, wall_seconds: float) -> WorkerOutcome:
        """Run one harness over the request's seeds; never raises for what the policy does."""
        ...


def _drain(stream: IO[bytes], cap: int, sink: list[bytes], flags: dict[str, bool]) -> None:
    """Read a stream to its end, keeping at most `cap` bytes (the rest is read and dropped)."""
    kept = 0
    while chunk := stream.read(1 << 16):
        if kept < cap:
            sink.append(chunk[: cap - kept])
            kept += len(sink[-1])
        if kept >= cap and len(chunk):
            flags["truncated"] = kept + len(chunk) > cap or flags.get("truncated", False)


def run_process(
    argv: list[str],
    stdin: bytes,
    wall_seconds: float,
    env: dict[str, str] | None = None,
) -> WorkerOutcome:
    """Run a command with a wall-clock kill of its whole process group and capped output."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    out: list[bytes] = []
    err: list[bytes] = []
    out_flags: dict[str, bool] = {}
    readers = [
        threading.Thread(target=_drain, args=(process.stdout, MAX_RESULT_BYTES, out, out_flags)),
        threading.Thread(target=_drain, args=(process.stderr, 1 << 20, err, {})),
    ]
    for reader in readers:
        reader.start()
    try:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
    except BrokenPipeError:
        pass
    timed_out = False
    try:
        process.wait(timeout=wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process.pid)
        process.wait()
    _kill_group(process.pid)  # anything the worker left behind in its session
    for reader in readers:
        reader.join()
    stderr = b"".join(err)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
    return WorkerOutcome(
        stdout=b"".join(out),
        stderr_tail=stderr,
        exit_code=process.returncode,
        timed_out=timed_out,
        stdout_truncated=out_flags.get("truncated", False),
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
