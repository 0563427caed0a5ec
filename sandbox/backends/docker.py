"""A fresh Docker container per episode, started warm: the wall for machines with an engine.

Each sandbox is one container of the sandbox image (see `Dockerfile`), created, attached and
started ahead of its request; its harness imports the emulator stack, builds the emulator,
starts the policy process and says ready, then waits on stdin. Inside: no network, a read-only
root file system and an empty read-only /tmp, no IPC namespace sharing, no-new-privileges,
cgroup memory (no swap) and pids limits, one CPU (pinned with a cpuset where the engine has that
CPU), no host mounts, an environment of `HARNESS_ENV` only.

Uids: the container starts as root with every capability dropped except CAP_SETUID,
CAP_SETGID, CAP_SETPCAP and CAP_SYS_NICE, which the harness uses once, before any untrusted
byte arrives, to reset the scheduling and I/O priorities (nice 0, best-effort 4, as the bwrap
zygote does), empty the bounding set, start the policy process under a uid of its own and
then drop itself to another (`sandbox.backends.uids`); after that nothing in the container
holds any capability.

Endings: past the wall budget the container is killed (`timed_out`); the kernel's OOM killer
acting anywhere in its cgroup shows as `oom_killed` (State.OOMKilled); a harness killed by
signal N (Docker reports 128+N) shows as exit code -N.

Stale containers: `sandbox.backends.docker_stale` (labels, reaping, retried removals).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from typing import Any

import docker
import docker.errors
from docker.utils.socket import STDOUT, frames_iter

from sandbox.backends.base import (
    MAX_RESULT_BYTES,
    STDERR_TAIL_BYTES,
    Prepare,
    ResultStream,
    SandboxUnavailable,
    SandboxUsed,
    WorkerOutcome,
    close_quietly,
)
from sandbox.backends.cgroups import process_start
from sandbox.backends.docker_image import (
    BUILD_HINT,
    IMAGE_PYTHON,
    SOURCE_HASH_LABEL,
    connect_engine,
    image_name,
    source_hash,
)
from sandbox.backends.docker_stale import (
    ENGINE_ERRORS,
    LABEL,
    LABEL_HOST,
    LABEL_PID,
    LABEL_PID_START,
    reap_stale_containers,
    removals_pending,
    remove_container,
    retry_removals,
)
from sandbox.backends.uids import UidLease, lease_uids
from sandbox.names import BackendKind
from sandbox.runtime.constants import EMPTY_TMP_BYTES, HARNESS_ENV
from sandbox.settings import Limits

CPUS_PER_SANDBOX = 1
KILL_GRACE_SECONDS = 30  # for the engine to report a killed container's exit
_warned_stale: set[str] = set()


def _exit_code(docker_code: int | None) -> int | None:
    """Docker's exit code in the backend's convention: a death by signal N becomes -N."""
    if docker_code is not None and 128 < docker_code < 128 + 65:
        return -(docker_code - 128)
    return docker_code


def _raw_socket(attached: Any) -> Any:
    """The socket under the SDK's attach wrapper (a SocketIO for unix sockets)."""
    return getattr(attached, "_sock", attached)


def _send_and_close(attached: Any, data: bytes) -> None:
    """Write the request to the container's stdin, then end it (half-close: output goes on)."""
    raw = _raw_socket(attached)
    if hasattr(raw, "sendall"):
        raw.sendall(data)
    else:
        attached.write(data)
    if hasattr(raw, "shutdown_write"):  # an ssh:// engine's paramiko channel
        raw.shutdown_write()
    else:
        raw.shutdown(socket.SHUT_WR)


class _Relay:
    """Copies the container's framed stdout/stderr into two pipes, so that the harness's result
    stream reads the same on every backend (`ResultStream`). stdout capped."""

    def __init__(self, attached: Any) -> None:
        self.attached = attached
        self.stdout_read, self._stdout_write = os.pipe()
        self.stderr_read, self._stderr_write = os.pipe()
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="docker-relay")
        self.thread.start()

    def _run(self) -> None:
        kept = 0
        try:
            for stream, data in frames_iter(self.attached, tty=False):
                if stream == STDOUT:
                    data = data[: max(0, MAX_RESULT_BYTES + 4096 - kept)]
                    kept += len(data)
                    target = self._stdout_write
                else:
                    data = data[:STDERR_TAIL_BYTES]
                    target = self._stderr_write
                with contextlib.suppress(OSError):  # the reader is gone: keep draining
                    os.write(target, data)
        except (OSError, ValueError) as error:  # the engine dropped the connection
            self.failure = f"{type(error).__name__}: {error}"
        finally:
            close_quietly(self._stdout_write, self._stderr_write)


class DockerSandbox:
    """One container, warm, for one episode."""

    def __init__(self, backend: DockerBackend, cpu: int | None, prepare: Prepare | None) -> None:
        self.backend = backend
        self.cpu, self.prepared = cpu, prepare
        self.container_id: str | None = None
        self._used = False
        self._destroyed = False
        self._lock = threading.Lock()
        self._ready = False
        self.lease: UidLease = lease_uids()
        self.client = backend.client()
        self._relay: _Relay | None = None
        try:
            self._create()
            self._start()
        except BaseException:
            self.destroy()
            raise

    def _create(self) -> None:
        if removals_pending():
            retry_removals(self.client)
        config = self.backend.container_config(self.lease, self.cpu, self.prepared)
        host = self.client.api.create_host_config(**config.pop("host_config"))
        self.container_id = self.client.api.create_container(**config, host_config=host)["Id"]

    @property
    def _id(self) -> str:
        assert self.container_id is not None, "the container was not created"
        return self.container_id

    def _start(self) -> None:
        self._attached = self.client.api.attach_socket(
            self._id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        raw = _raw_socket(self._attached)
        if hasattr(raw, "settimeout"):
            raw.settimeout(None)  # an episode may print nothing for minutes
        self._relay = _Relay(self._attached)
        self.results = ResultStream(self._relay.stdout_read, self._relay.stderr_read)
        self.client.api.start(self._id)

    def wait_ready(self, timeout_seconds: float) -> bool:
        if not self._ready and not self._destroyed:
            self._ready = self.results.read_until(True, time.monotonic() + timeout_seconds)
        return self._ready and not self.results.closed

    def alive(self) -> bool:
        """Warm, and nothing happened since (a dead container ends the attach stream)."""
        if self._destroyed or self._used or not self._ready or self._relay is None:
            return False
        import select

        poller = select.poll()
        poller.register(self.results.fd, select.POLLIN | select.POLLHUP)
        return not poller.poll(0)

    def run(self, spec_json: str, wall_seconds: float) -> WorkerOutcome:
        with self._lock:
            if self._used:
                raise SandboxUsed("this sandbox has served its request")
            self._used = True
        deadline = time.monotonic() + wall_seconds
        problem: str | None = None
        with contextlib.suppress(OSError):  # a harness that died at once: its exit says why
            _send_and_close(self._attached, spec_json.encode())
        finished = self.results.read_until(False, deadline)
        state: dict[str, Any] = {}
        try:
            if not finished:
                with contextlib.suppress(docker.errors.APIError):
                    self.client.api.kill(self._id)
            self.client.api.wait(self._id, timeout=KILL_GRACE_SECONDS)
            state = self.client.api.inspect_container(self._id).get("State") or {}
        except ENGINE_ERRORS as error:
            problem = f"the Docker engine failed this sandbox: {type(error).__name__}: {error}"
        relay_failure = self._relay.failure if self._relay else None
        if problem is None and relay_failure and finished:
            problem = f"the attach stream broke: {relay_failure}"
        stderr_tail = self.results.stderr_tail
        if problem:
            stderr_tail = (stderr_tail + "\n" + problem)[-STDERR_TAIL_BYTES:]
        exit_code = self.results.exit_code
        if state.get("ExitCode") is not None:
            exit_code = _exit_code(state.get("ExitCode"))
        return WorkerOutcome(
            stdout=self.results.episode or b"",
            stderr_tail=stderr_tail,
            exit_code=exit_code if state or exit_code is not None else None,
            timed_out=not finished,
            oom_killed=bool(state.get("OOMKilled")),
            stdout_truncated=self.results.truncated,
        )

    def destroy(self) -> None:
        with self._lock:
            if self._destroyed:
                return
            self._destroyed = True
        if self.container_id is not None:
            remove_container(self.client, self.container_id)
        with contextlib.suppress(OSError):
            if self._relay is not None:
                _raw_socket(self._attached).close()
        if self._relay is not None:
            self._relay.thread.join(timeout=KILL_GRACE_SECONDS)
            close_quietly(self._relay.stdout_read, self._relay.stderr_read)
        with contextlib.suppress(Exception):
            self.client.close()
        self.lease.release()


class DockerBackend:
    name: BackendKind = "docker"

    def __init__(self, limits: Limits, image: str | None = None) -> None:
        self.limits = limits
        self.image = image or image_name()
        client = connect_engine()
        try:
            image_info = client.images.get(self.image)
        except docker.errors.ImageNotFound as error:
            raise SandboxUnavailable(
                f"image {self.image} not found in the Docker engine; build it with {BUILD_HINT}"
            ) from error
        except docker.errors.DockerException as error:
            raise SandboxUnavailable(f"cannot inspect image {self.image}: {error}") from error
        self.api_version = client.api.api_version
        self.engine_cpus = int(client.info().get("NCPU") or 0)
        self._warn_if_stale(image_info)
        reap_stale_containers(client)
        retry_removals(client)
        client.close()
        self.creator_labels = {
            LABEL: "1",
            LABEL_HOST: socket.gethostname(),
            LABEL_PID: str(os.getpid()),
            LABEL_PID_START: process_start(os.getpid()) or "",
        }

    def _warn_if_stale(self, image_info: Any) -> None:
        if image_info.id in _warned_stale:
            return
        try:
            expected = source_hash()
        except SandboxUnavailable:
            return
        if (image_info.labels or {}).get(SOURCE_HASH_LABEL) != expected:
            _warned_stale.add(image_info.id)
            warnings.warn(
                f"the sandbox image {self.image} was built from other sources than the sandbox "
                f"package on disk; rebuild it with {BUILD_HINT}",
                stacklevel=3,
            )

    def client(self) -> docker.DockerClient:
        # One client per sandbox: sandboxes live in threads, and each hijacks a connection.
        return docker.from_env(version=self.api_version, timeout=60)

    def start_sandbox(self, cpu: int | None, prepare: Prepare | None) -> DockerSandbox:
        try:
            return DockerSandbox(self, cpu, prepare)
        except ENGINE_ERRORS as error:
            # An engine gone since the run started says so in the words the start-up uses.
            connect_engine(timeout_seconds=5).close()  # raises "no Docker engine answers ..."
            raise SandboxUnavailable(f"the Docker engine failed: {error}") from error

    def close(self) -> None:
        """A last try at the containers this process could not remove (an engine that was
        unreachable when their sandbox was destroyed): nothing is left behind a closed pool."""
        client = self.client()
        try:
            retry_removals(client)
        except ENGINE_ERRORS:
            pass  # still unreachable: the next start reaps them (reap_stale_containers)
        finally:
            client.close()

    def container_config(
        self, lease: UidLease, cpu: int | None, prepare: Prepare | None
    ) -> dict[str, Any]:
        """create_container's arguments, with the host settings under "host_config"."""
        memory = f"{self.limits.sandbox_memory_mb}m"
        command = [IMAGE_PYTHON, "-s", "-m", "sandbox.runtime.harness"]
        command += ["--uid", str(lease.harness_uid), "--policy-uid", str(lease.policy_uid)]
        if prepare is not None:
            setting = f"{prepare.game},{prepare.frameskip},{prepare.repeat_action_probability}"
            command += ["--prepare", setting]
        host: dict[str, Any] = {
            "network_mode": "none",
            "ipc_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"ro,nosuid,nodev,noexec,size={EMPTY_TMP_BYTES},mode=0755"},
            "cap_drop": ["ALL"],
            # Used once by the harness (module doc); SYS_NICE to reset the priorities.
            "cap_add": ["SETUID", "SETGID", "SETPCAP", "SYS_NICE"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": self.limits.pids,
            "mem_limit": memory,
            "memswap_limit": memory,
            "log_config": {"type": "none", "config": {}},  # output comes over the attach socket
            "nano_cpus": CPUS_PER_SANDBOX * 1_000_000_000,
        }
        if cpu is not None and 0 <= cpu < self.engine_cpus:
            host["cpuset_cpus"] = str(cpu)
        return {
            "image": self.image,
            "command": command,
            "stdin_open": True,  # with detach=False this also sets StdinOnce: EOF ends stdin
            "user": "0:0",
            "environment": dict(HARNESS_ENV),
            "working_dir": "/",
            "hostname": "evocade",
            "labels": dict(self.creator_labels),
            "use_config_proxy": False,
            "host_config": host,
        }
