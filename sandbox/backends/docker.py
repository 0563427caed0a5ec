"""A fresh Docker container per worker: the wall for machines with an engine (or a remote one).

Each `run_worker` creates one container from the sandbox image (see `Dockerfile`) and removes it
again whatever happens. Inside: no network (`--network none`), a read-only root file system with
a size-capped tmpfs at /tmp as the only writable place, no IPC namespace sharing and no
/dev/shm, uid 65534 with every capability dropped and no-new-privileges, cgroup memory (no swap)
and pids limits, one CPU, no host mounts at all and an environment of `SANDBOX_ENV` only. The
request goes in on the container's stdin over an attach socket; the harness's stdout (capped)
and stderr tail come back over the same socket, demultiplexed from Docker's framed stream.

Endings: past `wall_seconds` the container is killed (`timed_out`); the kernel's OOM killer
acting anywhere in the container's cgroup shows as `oom_killed` (Docker's State.OOMKilled);
a harness killed by a signal N (Docker reports 128+N) shows as exit code -N.

CPU placement: `evaluate` gives each worker a host CPU in the request (`"cpu": N`) and the
harness pins itself there. The container gets `cpuset_cpus=N` (harness and policy share that
core: the cheapest IPC, DESIGN.md §5) as long as the engine has a CPU N; otherwise (a remote
engine with fewer CPUs) the backend drops the `cpu` from the request so the harness does not
try to pin itself to a CPU it cannot have, and the container is capped at one CPU by quota.

Stale containers: every container carries `evocade.sandbox=1` and its creator's host name, pid
and process start time. When a backend is built it removes those whose creator on this host is
gone (no such pid, or a pid reused by another process), and any older than
`STALE_CONTAINER_HOURS` whoever made them (a creator on another host sharing a remote engine).
A worker that cannot remove its own container (the engine went away mid-evaluation) leaves its
id to be removed again by the next backend built or worker started in this process, so a
long-running optimization does not collect containers across engine restarts.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import warnings
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.utils.socket import STDOUT, frames_iter

from sandbox.backends.base import (
    MAX_RESULT_BYTES,
    STDERR_TAIL_BYTES,
    SandboxUnavailable,
    WorkerOutcome,
)
from sandbox.backends.bwrap import SANDBOX_ENV, SANDBOX_UID
from sandbox.backends.docker_image import (
    BUILD_HINT,
    IMAGE_PYTHON,
    SOURCE_HASH_LABEL,
    connect_engine,
    image_name,
    source_hash,
)
from sandbox.settings import Limits

LABEL = "evocade.sandbox"
LABEL_HOST = "evocade.host"
LABEL_PID = "evocade.pid"
LABEL_PID_START = "evocade.pid-start"
STALE_CONTAINER_HOURS = 24.0  # longer than any worker's wall-clock budget
CPUS_PER_WORKER = 1
KILL_GRACE_SECONDS = 30.0  # for the engine to report a killed container's exit
_warned_stale: set[str] = set()
# Containers this process made whose removal failed (the engine was unreachable): retried.
_unremoved: set[str] = set()
_unremoved_lock = threading.Lock()


def _process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot: with the pid, a unique identity."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _creator_gone(labels: dict[str, str]) -> bool:
    """True when the container's creator ran on this host and no longer runs."""
    if labels.get(LABEL_HOST) != socket.gethostname():
        return False
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return True
    start = _process_start(pid)
    return start is None or start != labels.get(LABEL_PID_START)


def reap_stale_containers(client: docker.DockerClient) -> list[str]:
    """Remove sandbox containers left by a crashed creator (the rule is in the module doc)."""
    removed = []
    now = time.time()
    for info in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
        labels = info.get("Labels") or {}
        too_old = now - float(info.get("Created", now)) > STALE_CONTAINER_HOURS * 3600
        if too_old or _creator_gone(labels):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.api.remove_container(info["Id"], force=True)
                removed.append(info["Id"])
    return removed


def retry_removals(client: docker.DockerClient) -> list[str]:
    """Remove the containers earlier workers of this process could not (module doc)."""
    with _unremoved_lock:
        pending = sorted(_unremoved)
    removed = []
    for container_id in pending:
        try:
            client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            continue  # still unreachable: try again next time
        removed.append(container_id)
        with _unremoved_lock:
            _unremoved.discard(container_id)
    return removed


def _exit_code(docker_code: int | None) -> int | None:
    """Docker's exit code in the backend's convention: a death by signal N becomes -N."""
    if docker_code is not None and 128 < docker_code < 128 + 65:
        return -(docker_code - 128)
    return docker_code


class _Streams:
    """Reads the container's framed stdout/stderr until it closes; stdout capped."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.out: list[bytes] = []
        self.kept = 0
        self.truncated = False
        self.err = bytearray()
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for stream, data in frames_iter(self.sock, tty=False):
                if stream == STDOUT:
                    room = MAX_RESULT_BYTES - self.kept
                    if len(data) > room:
                        self.truncated = True
                    if room > 0:
                        self.out.append(data[:room])
                        self.kept += min(room, len(data))
                else:
                    self.err += data
                    if len(self.err) > 4 * STDERR_TAIL_BYTES:
                        del self.err[:-STDERR_TAIL_BYTES]
        except (OSError, ValueError) as error:  # the engine dropped the connection
            self.failure = f"{type(error).__name__}: {error}"

    @property
    def stdout(self) -> bytes:
        return b"".join(self.out)

    @property
    def stderr_tail(self) -> str:
        return bytes(self.err[-STDERR_TAIL_BYTES:]).decode("utf-8", "replace")


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


class DockerBackend:
    name = "docker"

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
            LABEL_PID_START: _process_start(os.getpid()) or "",
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

    def _client(self) -> docker.DockerClient:
        # One client per worker: workers run in threads, and each hijacks a connection.
        return docker.from_env(version=self.api_version, timeout=60)

    def _placement(self, request: bytes) -> tuple[bytes, dict[str, Any]]:
        """Pin the container to the request's CPU when the engine has it (module doc)."""
        data = json.loads(request)
        limits: dict[str, Any] = {"nano_cpus": CPUS_PER_WORKER * 1_000_000_000}
        if data.get("cpu") is None:
            return request, limits
        if 0 <= int(data["cpu"]) < self.engine_cpus:
            return request, {**limits, "cpuset_cpus": str(int(data["cpu"]))}
        data["cpu"] = None  # the harness would fail to pin itself to a CPU the engine lacks
        return json.dumps(data).encode(), limits

    def container_config(self, cpu_limits: dict[str, Any]) -> dict[str, Any]:
        memory = f"{self.limits.sandbox_memory_mb}m"
        return {
            "image": self.image,
            "command": [IMAGE_PYTHON, "-s", "-m", "sandbox.runtime.harness"],
            "stdin_open": True,  # with detach=False this also sets StdinOnce: EOF ends stdin
            "user": f"{SANDBOX_UID}:{SANDBOX_UID}",
            "environment": dict(SANDBOX_ENV),
            "working_dir": "/tmp",
            "hostname": "evocade",
            "network_mode": "none",
            "ipc_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={self.limits.tmpfs_mb}m,mode=1777"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": self.limits.pids,
            "mem_limit": memory,
            "memswap_limit": memory,
            "log_config": {"type": "none", "config": {}},  # output comes over the attach socket
            "labels": dict(self.creator_labels),
            "use_config_proxy": False,
            **cpu_limits,
        }

    def run_worker(self, request: bytes, wall_seconds: float) -> WorkerOutcome:
        started = time.monotonic()
        request, cpu_limits = self._placement(request)
        client = self._client()
        container_id: str | None = None
        streams: _Streams | None = None
        timed_out = False
        problem: str | None = None
        state: dict[str, Any] = {}
        try:
            if _unremoved:
                retry_removals(client)
            container_id = client.api.create_container(
                **_create_args(client, self.container_config(cpu_limits))
            )["Id"]
            attached = client.api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            raw = _raw_socket(attached)
            if hasattr(raw, "settimeout"):
                raw.settimeout(None)  # an episode may print nothing for minutes
            streams = _Streams(attached)
            streams.thread.start()
            client.api.start(container_id)
            with contextlib.suppress(OSError):  # a harness that died at once; its exit says why
                _send_and_close(attached, request)
            streams.thread.join(max(0.0, started + wall_seconds - time.monotonic()))
            if streams.thread.is_alive():
                timed_out = True
            else:
                deadline = started + wall_seconds
                try:
                    client.api.wait(container_id, timeout=max(1.0, deadline - time.monotonic()))
                except requests.exceptions.RequestException:
                    # A read timeout (over a unix socket it comes as a ConnectionError) only
                    # once the budget is spent; before that, the engine itself failed.
                    if time.monotonic() < deadline - 0.5:
                        raise
                    timed_out = True
            if timed_out:
                with contextlib.suppress(docker.errors.APIError):
                    client.api.kill(container_id)
                client.api.wait(container_id, timeout=KILL_GRACE_SECONDS)
                streams.thread.join(KILL_GRACE_SECONDS)
            state = client.api.inspect_container(container_id).get("State") or {}
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            problem = f"the Docker engine failed this worker: {type(error).__name__}: {error}"
        finally:
            if container_id is not None:
                try:
                    client.api.remove_container(container_id, force=True)
                except docker.errors.NotFound:
                    pass
                except (docker.errors.DockerException, requests.exceptions.RequestException):
                    with _unremoved_lock:
                        _unremoved.add(container_id)
            client.close()
        stderr_tail = streams.stderr_tail if streams else ""
        if problem is None and streams is not None and streams.failure and not timed_out:
            problem = f"the attach stream broke: {streams.failure}"
        if problem:
            stderr_tail = (stderr_tail + "\n" + problem)[-STDERR_TAIL_BYTES:]
        return WorkerOutcome(
            stdout=streams.stdout if streams else b"",
            stderr_tail=stderr_tail,
            exit_code=_exit_code(state.get("ExitCode")) if state else None,
            timed_out=timed_out,
            oom_killed=bool(state.get("OOMKilled")),
            stdout_truncated=streams.truncated if streams else False,
        )


def _create_args(client: docker.DockerClient, config: dict[str, Any]) -> dict[str, Any]:
    """Split the flat settings into create_container's arguments and its host_config."""
    host_keys = {
        "network_mode",
        "ipc_mode",
        "read_only",
        "tmpfs",
        "cap_drop",
        "security_opt",
        "pids_limit",
        "mem_limit",
        "memswap_limit",
        "log_config",
        "nano_cpus",
        "cpuset_cpus",
    }
    host = {key: value for key, value in config.items() if key in host_keys}
    args = {key: value for key, value in config.items() if key not in host_keys}
    args["host_config"] = client.api.create_host_config(**host)
    return args
