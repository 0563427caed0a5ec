"""What the adversarial suite watches on the host while hostile programs run.

- a secret in this process's environment (`EVOCADE_TEST_SECRET`), set before any sandbox starts;
- a world-readable, world-writable directory on the host holding a sentinel file and a real
  evocade database, each with its access time set before its modification time, so that any
  read at all would move it (relatime);
- a TCP listener and a UDP socket on the host's 127.0.0.1 that must never hear anything;
- the processes descended from this test process and, for docker, the containers it created:
  none may be left after an evaluation;
- an emulator in this process that replays the actions an episode reports, to check that the
  reported score is what the emulator really gives.

What the suite saw is written to `results.json` at the end of the session (merged with what is
there), from which `make_security_doc.py` renders docs/SECURITY.md.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.catalog import cell_key, merge_results
from tests.conftest import descendants

SECRET_NAME = "EVOCADE_TEST_SECRET"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DOCKER_SOCKET = "/run/evocade-docker/docker.sock"

_SESSION_RESULTS: dict[str, Any] = {"programs": {}, "faults": {}}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SESSION_RESULTS["programs"] or _SESSION_RESULTS["faults"]:
        merge_results(_SESSION_RESULTS)


@pytest.fixture
def record():
    """record(program, backend, mode, statuses, evidence) or record(fault=name, outcome=text)."""

    def add(
        program: str | None = None,
        backend: str | None = None,
        mode: str | None = None,
        statuses: list[str] | None = None,
        evidence: str = "",
        *,
        fault: str | None = None,
        outcome: str = "",
    ) -> None:
        if fault is not None:
            _SESSION_RESULTS["faults"][fault] = {"outcome": outcome}
            return
        assert program and backend and mode and statuses is not None
        cells = _SESSION_RESULTS["programs"].setdefault(program, {})
        cells[cell_key(backend, mode)] = {"statuses": statuses, "evidence": evidence}

    return add


# -- the secret --------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def secret() -> Iterator[str]:
    value = "evocade-secret-" + secrets.token_hex(16)
    previous = os.environ.get(SECRET_NAME)
    os.environ[SECRET_NAME] = value
    yield value
    if previous is None:
        os.environ.pop(SECRET_NAME, None)
    else:
        os.environ[SECRET_NAME] = previous


# -- the host directory ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory, secret: str) -> Path:
    """A real evocade database with a run and a program whose source holds the secret."""
    from storage import Store

    path = tmp_path_factory.mktemp("database") / "evocade.db"
    with Store.open(path) as store:
        run = store.create_run("Pong", {"frameskip": 4}, {"note": "adversarial fixture"})
        store.add_program(run.id, f"# {secret}\ndef act(obs):\n    return 0\n", origin="seed")
    return path


@dataclass
class _Snapshot:
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    sha256: str


@dataclass
class HostFiles:
    """The directory on the host that hostile programs aim at, and how it looked before."""

    directory: Path
    sentinel: Path
    database: Path
    before: dict[str, _Snapshot] = field(default_factory=dict)
    listing: list[str] = field(default_factory=list)

    def take_snapshot(self) -> None:
        for path in (self.sentinel, self.database):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            stat = path.stat()
            # atime an hour before mtime: under relatime, any read now moves it.
            os.utime(path, ns=(stat.st_mtime_ns - 3600 * 10**9, stat.st_mtime_ns))
            stat = path.stat()
            self.before[path.name] = _Snapshot(
                stat.st_atime_ns, stat.st_mtime_ns, stat.st_ctime_ns, digest
            )
        self.listing = sorted(os.listdir(self.directory))

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def problems(self) -> list[str]:
        """What changed since the snapshot (stat first: reading the content moves atime)."""
        found = []
        listing = sorted(os.listdir(self.directory))
        if listing != self.listing:
            found.append(f"the host directory changed: {self.listing} -> {listing}")
        for path in (self.sentinel, self.database):
            before = self.before[path.name]
            stat = path.stat()
            if stat.st_atime_ns != before.atime_ns:
                found.append(f"{path.name} was read (atime moved)")
            if (stat.st_mtime_ns, stat.st_ctime_ns) != (before.mtime_ns, before.ctime_ns):
                found.append(f"{path.name} was modified (mtime/ctime moved)")
        for path in (self.sentinel, self.database):
            if hashlib.sha256(path.read_bytes()).hexdigest() != self.before[path.name].sha256:
                found.append(f"{path.name} content changed")
        return found


def make_host_files(database_template: Path, secret: str) -> HostFiles:
    """A fresh directory under /var/tmp, open to everyone (0777, files 0666): only the
    sandbox's walls, not file permissions, keep the programs out. Remove with `.remove()`."""
    directory = Path(tempfile.mkdtemp(prefix="evocade-adv-", dir="/var/tmp"))
    os.chmod(directory, 0o777)
    sentinel = directory / "sentinel.txt"
    sentinel.write_text(f"sentinel {secret}\n")
    database = directory / "evocade.db"
    shutil.copyfile(database_template, database)
    for path in (sentinel, database):
        os.chmod(path, 0o666)
    files = HostFiles(directory, sentinel, database)
    files.take_snapshot()
    return files


# -- listeners on the host's loopback ----------------------------------------------------------


class Listeners:
    """A TCP listener and a UDP socket on 127.0.0.1 that record whatever reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.heard: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._accept, daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def tcp_port(self) -> int:
        return self.tcp.getsockname()[1]

    @property
    def udp_port(self) -> int:
        return self.udp.getsockname()[1]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, peer = self.tcp.accept()
            except (TimeoutError, OSError):
                continue
            self.heard.append(f"TCP connection from {peer}")
            connection.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            self.heard.append(f"UDP datagram from {peer}: {data[:40]!r}")

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.tcp.close()
        self.udp.close()


@pytest.fixture(scope="session")
def listeners() -> Iterator[Listeners]:
    watching = Listeners()
    yield watching
    watching.close()


# -- processes and containers ------------------------------------------------------------------


def leftover_processes(wait_seconds: float = 60.0) -> list[int]:
    """Descendants still there after a grace (a reaped sandbox takes a moment to go; on a
    loaded machine a long one, and this returns as soon as none is left)."""
    deadline = time.monotonic() + wait_seconds
    while (found := descendants()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def our_containers() -> list[dict[str, Any]]:
    """Sandbox containers created by this process, running or not."""
    from sandbox.backends.docker import LABEL_PID
    from sandbox.backends.docker_image import connect_engine

    client = connect_engine()
    try:
        return client.api.containers(all=True, filters={"label": f"{LABEL_PID}={os.getpid()}"})
    finally:
        client.close()


def docker_socket_path() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://") :] if host.startswith("unix://") else DEFAULT_DOCKER_SOCKET


# -- backends ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DockerState:
    backend: Any  # a DockerBackend, or None when it cannot be used here
    reason: str  # why not
    required: bool  # EVOCADE_REQUIRE_BACKENDS names docker


@pytest.fixture(scope="session")
def docker_state() -> DockerState:
    """Whether the docker backend can run here, from an image that matches the sandbox sources
    on disk (a stale image would test yesterday's sandbox)."""
    from sandbox.backends.base import SandboxUnavailable
    from sandbox.backends.docker_image import BUILD_HINT, connect_engine, image_status
    from sandbox.evaluate import make_backend
    from sandbox.settings import Limits

    required = "docker" in os.environ.get("EVOCADE_REQUIRE_BACKENDS", "").replace(" ", "").split(
        ","
    )
    try:
        backend = make_backend("docker", Limits())
        client = connect_engine()
        try:
            status = image_status(client)
        finally:
            client.close()
    except SandboxUnavailable as error:
        return DockerState(None, f"backend docker unavailable: {error}", required)
    if status.stale:
        return DockerState(
            None, f"the sandbox image {status.tag} is stale; rebuild it with {BUILD_HINT}", required
        )
    return DockerState(backend, "", required)


@pytest.fixture(scope="session")
def docker_backend(docker_state: DockerState):
    if docker_state.backend is None:
        if docker_state.required:
            pytest.fail(docker_state.reason)
        pytest.skip(docker_state.reason)
    return docker_state.backend


@pytest.fixture
def sandbox_backend(request: pytest.FixtureRequest):
    """The backend named by the test's `backend_name` parameter."""
    name = request.node.callspec.params["backend_name"]
    return request.getfixturevalue("bwrap_backend" if name == "bwrap" else "docker_backend")


# -- the emulator, for replays -----------------------------------------------------------------


class Replayer:
    """Plays a list of actions on the real emulator in this process and sums the reward."""

    def __init__(self) -> None:
        self._envs: dict[str, Any] = {}

    def episode_return(self, game: str, env_settings: dict[str, Any], seed: int, actions: str):
        from sandbox.runtime.emulator import make_env

        key = f"{game}:{sorted(env_settings.items())}"
        if key not in self._envs:
            self._envs[key] = make_env(
                game, env_settings["frameskip"], env_settings["repeat_action_probability"]
            )
        env = self._envs[key]
        env.reset(seed=seed)
        total = 0.0
        for symbol in actions:
            _, reward, terminated, truncated, _ = env.step(int(symbol, 36))
            total += float(reward)
            if terminated or truncated:
                break
        return total

    def close(self) -> None:
        for env in self._envs.values():
            env.close()


@pytest.fixture(scope="session")
def replayer() -> Iterator[Replayer]:
    replay = Replayer()
    yield replay
    replay.close()
