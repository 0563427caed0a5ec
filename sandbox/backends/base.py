"""What every isolation backend provides: warm sandboxes that each play one episode.

    sandbox = backend.start_sandbox(cpu=0, prepare=Prepare("Pong", 4, 0.25, seeds=(0, 1)))
    sandbox.wait_ready(60)                                              # imports done
    outcome = sandbox.run(spec_json, wall_seconds=650)                  # one episode, once
    sandbox.destroy()                                                   # nothing left behind

A backend knows how to build walls (namespaces, a container, nothing) and how to get a harness
ready inside them. It does not interpret results: `run` hands back the raw, size-capped result
line and the facts about how the sandbox ended, each its own field (`WorkerOutcome`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import time
from dataclasses import dataclass, field
from typing import Protocol

from sandbox.names import BackendKind

MAX_RESULT_BYTES = 8 << 20  # one episode's result, its trace included
STDERR_TAIL_BYTES = 4096

MAX_PREPARED_SEEDS = 64


@dataclass(frozen=True)
class Prepare:
    """What a warm sandbox builds ahead: the emulator for one setting, and snapshots of its
    reset for seeds that are likely to come (a run plays the same seeds again and again)."""

    game: str
    frameskip: int
    repeat_action_probability: float
    seeds: tuple[int, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "game": self.game,
            "frameskip": self.frameskip,
            "repeat_action_probability": self.repeat_action_probability,
            "seeds": list(self.seeds[:MAX_PREPARED_SEEDS]),
        }


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be set up here; the message says why and how to fix it."""


class SandboxUsed(RuntimeError):
    """A warm sandbox serves one request; a second one on it is refused."""


@dataclass(frozen=True)
class WorkerOutcome:
    stdout: bytes  # the harness's episode result (JSON), capped
    stderr_tail: str
    exit_code: int | None  # negative: killed by that signal; None: unknown (never reported)
    timed_out: bool = False
    oom_killed: bool = False
    stdout_truncated: bool = False
    peak_memory_mb: float | None = None


class WarmSandbox(Protocol):
    """A sandbox started ahead of its request; it plays one episode and is then destroyed."""

    cpu: int | None
    prepared: Prepare | None

    def wait_ready(self, timeout_seconds: float) -> bool:
        """Block until warm (True) or dead/late (False)."""
        ...

    def alive(self) -> bool:
        """Warm and untouched: it may be handed out (checked without blocking)."""
        ...

    def run(self, spec_json: str, wall_seconds: float) -> WorkerOutcome:
        """Play the episode; never raises for what the policy does; raises SandboxUsed if
        called twice. The caller destroys the sandbox afterwards (what is left in it may still
        run until then)."""
        ...

    def destroy(self) -> None:
        """Kill everything in it and remove it; idempotent, safe from any thread."""
        ...


class Backend(Protocol):
    name: BackendKind

    def start_sandbox(self, cpu: int | None, prepare: Prepare | None) -> WarmSandbox: ...

    def close(self) -> None:
        """Stop what the backend runs for its sandboxes (the fork server); idempotent."""
        ...


@dataclass
class ResultStream:
    """Reads a harness's result pipe: `{"ready":true}`, then the episode, then how it exited.

    Everything on it is untrusted until the host has validated it: lines are capped, and only
    the three known shapes are taken.
    """

    fd: int
    stderr_fd: int | None = None
    buffer: bytes = b""
    episode: bytes | None = None
    exit_code: int | None = None
    truncated: bool = False
    stderr: bytearray = field(default_factory=bytearray)
    closed: bool = False

    def _lines(self) -> list[bytes]:
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > MAX_RESULT_BYTES:
            self.truncated = True
            self.buffer = b""
        return lines

    def read_until(self, want_ready: bool, deadline: float) -> bool:
        """Read until ready (want_ready) or end of stream; False when the deadline passed."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP)
        if self.stderr_fd is not None:
            poller.register(self.stderr_fd, select.POLLIN | select.POLLHUP)
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for fd, _ in poller.poll(remaining * 1000):
                chunk = os.read(fd, 1 << 16)
                if fd == self.stderr_fd:
                    self._keep_stderr(chunk, poller)
                    continue
                if not chunk:
                    self.closed = True
                    break
                self.buffer += chunk
                for line in self._lines():
                    if self._take(line) and want_ready:
                        return True
        return not want_ready

    def _keep_stderr(self, chunk: bytes, poller: select.poll) -> None:
        if not chunk and self.stderr_fd is not None:
            poller.unregister(self.stderr_fd)
            self.stderr_fd = None
            return
        self.stderr += chunk
        if len(self.stderr) > 4 * STDERR_TAIL_BYTES:
            del self.stderr[:-STDERR_TAIL_BYTES]

    def _take(self, line: bytes) -> bool:
        """Keep a known line; True for the ready line."""
        if line == b'{"ready":true}':
            return True
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            if isinstance(data, dict) and "episode" in data and self.episode is None:
                self.episode = json.dumps(data["episode"]).encode()
            elif isinstance(data, dict) and type(data.get("harness_exit")) is int:
                self.exit_code = data["harness_exit"]
        return False

    @property
    def stderr_tail(self) -> str:
        return bytes(self.stderr[-STDERR_TAIL_BYTES:]).decode("utf-8", "replace")


def close_quietly(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None and fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
