"""The host side of the fork server: start it, ask it for harnesses, hold what they became.

`ForkServer` runs `sandbox.backends.forkserver` as a child with a clean environment and talks to
it over a socketpair; `ForkedSandbox` is one warm sandbox made with it (bwrap's stub around it,
or nothing for `--sandbox none`), with the pipes to its harness.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from sandbox.backends.base import (
    MAX_RESULT_BYTES,
    Prepare,
    ResultStream,
    SandboxUnavailable,
    SandboxUsed,
    WorkerOutcome,
    close_quietly,
)
from sandbox.backends.bwrap import BwrapBackend, Stub, start_stub
from sandbox.backends.cgroups import SandboxCgroup
from sandbox.backends.uids import UidLease, lease_uids
from sandbox.names import BackendKind
from sandbox.runtime.constants import HARNESS_ENV, MAX_MESSAGE_BYTES

SERVER_START_SECONDS = 120.0  # a cold machine importing the emulator stack
SPAWN_SECONDS = 60.0


class ForkServer:
    """One fork server process; `spawn` is safe from any thread (calls are serialized)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**HARNESS_ENV, "PYTHONPATH": package_root}
        self.process = subprocess.Popen(
            [sys.executable, "-s", "-m", "sandbox.backends.forkserver", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd="/",
        )
        theirs.close()
        self.socket = ours
        self._lock = threading.Lock()
        self._stderr: deque[bytes] = deque(maxlen=64)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.socket.settimeout(SERVER_START_SECONDS)
        try:
            if self.socket.recv(MAX_RESULT_BYTES) != b'{"ready":true}':
                raise OSError("no ready message")
        except OSError as error:
            self.close()
            raise SandboxUnavailable(
                f"the fork server did not start: {self.stderr_tail()}"
            ) from error

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # ALE prints a banner for every emulator it builds
            self._stderr.append(line)

    def stderr_tail(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")[-2000:]

    def spawn(self, spec: dict[str, Any], fds: list[int]) -> int:
        """Fork a supervisor + harness for `spec` with these pipe ends; its pid."""
        with self._lock:
            try:
                self.socket.settimeout(SPAWN_SECONDS)
                socket.send_fds(self.socket, [json.dumps(spec).encode()], fds)
                reply = json.loads(self.socket.recv(MAX_MESSAGE_BYTES) or b"{}")
            except (OSError, ValueError) as error:
                raise SandboxUnavailable(
                    f"the fork server failed: {error}; {self.stderr_tail()}"
                ) from error
        if "pid" not in reply:
            raise SandboxUnavailable(f"the fork server refused: {reply.get('error', reply)}")
        return int(reply["pid"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ForkedSandbox:
    """A harness forked into a fresh sandbox, waiting for its one episode."""

    def __init__(
        self,
        server: ForkServer,
        spec: dict[str, Any],
        cpu: int | None,
        prepare: Prepare | None,
        stub: Stub | None = None,
        cgroup: SandboxCgroup | None = None,
        lease: UidLease | None = None,
    ) -> None:
        self.cpu, self.prepared = cpu, prepare
        self.stub, self.cgroup, self.lease = stub, cgroup, lease
        self._used = False
        self._destroyed = False
        self._running = False  # a run() is reading the pipes: destroy() must not close them
        self._lock = threading.Lock()
        request_read, self._request_write = os.pipe()
        self._results_read, results_write = os.pipe()
        self._stderr_read, stderr_write = os.pipe()
        self.results = ResultStream(self._results_read, self._stderr_read)
        try:
            server.spawn(
                {**spec, "cpu": cpu, "prepare": prepare.to_json() if prepare else None},
                [request_read, results_write, stderr_write],
            )
        except BaseException:
            close_quietly(request_read, results_write, stderr_write)
            self.destroy()
            raise
        close_quietly(request_read, results_write, stderr_write)
        self._ready = False

    def wait_ready(self, timeout_seconds: float) -> bool:
        if not self._ready and not self._destroyed:
            self._ready = self.results.read_until(True, time.monotonic() + timeout_seconds)
        return self._ready and not self.results.closed

    def alive(self) -> bool:
        """Warm, and nothing happened since: no output, no hang-up, the stub still running."""
        if self._destroyed or self._used or not self._ready:
            return False
        if self.stub is not None and not self.stub.alive():
            return False
        import select

        poller = select.poll()
        poller.register(self._results_read, select.POLLIN | select.POLLHUP)
        return not poller.poll(0)

    def run(self, spec_json: str, wall_seconds: float) -> WorkerOutcome:
        with self._lock:
            if self._used:
                raise SandboxUsed("this sandbox has served its request")
            if self._destroyed:
                raise SandboxUnavailable("this sandbox was destroyed")
            self._used = self._running = True
        try:
            finished = self._send_and_read(spec_json, time.monotonic() + wall_seconds)
        finally:
            with self._lock:
                self._running = False
                destroyed = self._destroyed
            if destroyed:  # destroy() came meanwhile and left the pipes to us
                self._close_pipes()
        usage = self.cgroup.usage() if self.cgroup is not None else None
        return WorkerOutcome(
            stdout=self.results.episode or b"",
            stderr_tail=self.results.stderr_tail,
            exit_code=self.results.exit_code,
            timed_out=not finished,
            oom_killed=bool(usage and usage.oom_killed),
            stdout_truncated=self.results.truncated,
            peak_memory_mb=usage.peak_memory_mb if usage else None,
        )

    def _send_and_read(self, spec_json: str, deadline: float) -> bool:
        data = spec_json.encode()
        with contextlib.suppress(OSError):  # a harness that is gone: its exit says why
            while data:
                data = data[os.write(self._request_write, data) :]
        close_quietly(self._request_write)
        self._request_write = -1
        return self.results.read_until(False, deadline)

    def _close_pipes(self) -> None:
        close_quietly(self._request_write, self._results_read, self._stderr_read)
        self._request_write = self._results_read = self._stderr_read = -1

    def destroy(self) -> None:
        """Kill everything in the sandbox. The pipes are closed here unless a run() is reading
        them (the pool closing mid-episode): closing an fd under another thread's poll() is
        EBADF at best, and at worst its number is reused by the next open(). That run() then
        sees the end of the stream, since every writer is dead, and closes them itself."""
        with self._lock:
            if self._destroyed:
                return
            self._destroyed = True
            running = self._running
        if self.stub is not None:
            self.stub.destroy()
        if self.cgroup is not None:
            self.cgroup.remove()  # kills whatever is left: harness, policy, supervisor
        if not running:
            self._close_pipes()
        if self.lease is not None:
            self.lease.release()


class ForkedBackend:
    """bwrap walls filled by the fork server (`isolate`), or no walls (`--sandbox none`)."""

    def __init__(self, walls: BwrapBackend | None) -> None:
        self.walls = walls
        self.name: BackendKind = walls.name if walls else "none"
        self._server: ForkServer | None = None
        self._server_lock = threading.Lock()

    def server(self) -> ForkServer:
        with self._server_lock:
            if self._server is None or not self._server.alive():
                self._server = ForkServer()
            return self._server

    def start_sandbox(self, cpu: int | None, prepare: Prepare | None) -> ForkedSandbox:
        server = self.server()
        if self.walls is None:
            return ForkedSandbox(server, _unisolated_spec(), cpu, prepare)
        walls = self.walls
        lease = lease_uids()
        cgroup = SandboxCgroup(walls.memory_mb, walls.pids, cpu)
        stub: Stub | None = None
        try:
            cgroup.create()
            stub = start_stub(walls, lease.harness_uid, cgroup)
            spec = walls.spawn_spec(lease, cgroup, stub.init_pid)
            return ForkedSandbox(server, spec, cpu, prepare, stub, cgroup, lease)
        except BaseException:
            if stub is not None:
                stub.destroy()
            cgroup.remove()
            lease.release()
            raise

    def close(self) -> None:
        with self._server_lock:
            if self._server is not None:
                self._server.close()
                self._server = None


def _unisolated_spec() -> dict[str, Any]:
    return {"isolate": False, "env": {**HARNESS_ENV, "HOME": os.environ.get("HOME", "/tmp")}}
