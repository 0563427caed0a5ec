"""The docker backend: same episodes as the other backends, same endings, nothing left behind.

Tests marked `docker` need an engine (DOCKER_HOST; `eval "$(scripts/dockerd.sh start)"`) and the
sandbox image (`evocade sandbox build-image`); they skip without them unless
EVOCADE_REQUIRE_BACKENDS names docker. The rest check the image's recipe and the backend's
bookkeeping without an engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import docker.errors
import pytest

from sandbox.backends.base import SandboxUnavailable
from sandbox.backends.uids import UID_BASE
from sandbox.evaluate import evaluate
from sandbox.results import Status
from sandbox.settings import EnvSettings, Limits
from tests.conftest import backend_or_skip, program, trace_of
from tests.sandbox.test_hostile import ENV as HOSTILE_ENV
from tests.sandbox.test_hostile import HOSTILE, limits_for
from tests.sandbox.test_hostile import LIMITS as HOSTILE_LIMITS

ROOT = Path(__file__).resolve().parents[2]
# ~5 ms a step: a Pong episode of 27,000 steps would take minutes, so it is surely mid-episode.
# What the runtime inside the image imports (pyproject.toml's comments); nothing of the host's.
SANDBOX_LIBRARIES = (
    "numpy",
    "gymnasium",
    "ale-py",
    "scipy",
    "termcolor",
    "orjson",
    "restrictedpython",
    "pyseccomp",
)
SLOW_POLICY = "import time\ndef act(obs):\n    time.sleep(0.005)\n    return 0\n"


@pytest.fixture(scope="session")
def docker_backend():
    return backend_or_skip("docker")


@pytest.fixture(scope="session")
def engine(docker_backend):
    from sandbox.backends.docker_image import connect_engine

    client = connect_engine()
    yield client
    client.close()


def _our_containers(engine) -> list[dict]:
    """Sandbox containers made by this test process, running or not."""
    from sandbox.backends.docker import LABEL_PID

    return engine.api.containers(all=True, filters={"label": f"{LABEL_PID}={os.getpid()}"})


def _spec(source: str, max_steps: int) -> str:
    from sandbox.episodes import EpisodeRequest
    from sandbox.pool import episode_spec

    env = EnvSettings.deterministic(max_steps=max_steps)
    request = EpisodeRequest(source, "Pong", 0, env, Limits(), restricted=False)
    return episode_spec(request).to_json()


def _play_in_one_sandbox(backend, source: str, max_steps: int, cpu: int | None, wall: float):
    sandbox = backend.start_sandbox(cpu, None)
    try:
        assert sandbox.wait_ready(120)
        return sandbox.run(_spec(source, max_steps), wall)
    finally:
        sandbox.destroy()


# --- the image's recipe and bookkeeping (no engine needed) -----------------------------------


def test_dockerfile_pins_the_sandbox_libraries_like_pyproject() -> None:
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {re.split(r"[<>=!~ ;\[]", line, maxsplit=1)[0].lower(): line for line in requirements}
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name in SANDBOX_LIBRARIES:
        assert f'"{pinned[name]}"' in dockerfile, f"the Dockerfile must pin {pinned[name]!r}"
    for name in ("pydantic", "sqlalchemy", "alembic", "openai", "typer", "rich", "docker"):
        assert f'"{pinned[name]}"' not in dockerfile, f"{name} has no business in the image"
    assert '--no-deps "ocatari==2.2.1"' in dockerfile
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile


def test_docker_image_context_is_the_dockerfile_and_the_sandbox_package() -> None:
    from sandbox.backends.docker_image import context_files

    files = context_files()
    assert "Dockerfile" in files
    assert "sandbox/runtime/harness.py" in files
    assert all(f in ("Dockerfile", ".dockerignore") or f.startswith("sandbox/") for f in files)
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_docker_image_source_hash_follows_the_context(tmp_path: Path) -> None:
    from sandbox.backends.docker_image import source_hash

    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / ".dockerignore").write_text("*\n!Dockerfile\n!sandbox/\n**/__pycache__\n")
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "a.py").write_text("A = 1\n")
    (tmp_path / "notes.txt").write_text("outside the context\n")
    first = source_hash(tmp_path)
    (tmp_path / "notes.txt").write_text("changed, still outside\n")
    (tmp_path / "sandbox" / "__pycache__").mkdir()
    (tmp_path / "sandbox" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert source_hash(tmp_path) == first
    (tmp_path / "sandbox" / "a.py").write_text("A = 2\n")
    assert source_hash(tmp_path) != first


def test_docker_image_status_compares_the_source_hash_label() -> None:
    from sandbox.backends.docker_image import SOURCE_HASH_LABEL, image_status, source_hash

    class Image:
        def __init__(self, labels: dict[str, str]) -> None:
            self.labels = labels

    class Images:
        def __init__(self, found: dict[str, Image]) -> None:
            self.found = found

        def get(self, tag: str) -> Image:
            if tag not in self.found:
                raise docker.errors.ImageNotFound(tag)
            return self.found[tag]

    class Client:
        def __init__(self, found: dict[str, Image]) -> None:
            self.images = Images(found)

    current = Image({SOURCE_HASH_LABEL: source_hash()})
    old = Image({SOURCE_HASH_LABEL: "0" * 64})
    client = Client({"a:1": current, "b:1": old, "c:1": Image({})})
    assert image_status(client, "a:1") == (True, False, "a:1")  # type: ignore[arg-type]
    assert image_status(client, "b:1") == (True, True, "b:1")  # type: ignore[arg-type]
    assert image_status(client, "c:1").stale  # type: ignore[arg-type]  # built by hand
    assert image_status(client, "d:1") == (False, False, "d:1")  # type: ignore[arg-type]


def test_docker_backend_without_an_engine_says_where_it_looked(monkeypatch) -> None:
    from sandbox.backends.docker import DockerBackend

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/evocade-test.sock")
    with pytest.raises(SandboxUnavailable, match="no Docker engine answers at unix:///nonexist"):
        DockerBackend(Limits())


def test_docker_backend_exit_codes_and_stale_creators() -> None:
    import socket

    from sandbox.backends import docker as backend
    from sandbox.backends import docker_stale as stale
    from sandbox.backends.cgroups import process_start

    assert backend._exit_code(0) == 0
    assert backend._exit_code(1) == 1
    assert backend._exit_code(137) == -9  # docker's 128+N for a death by signal N
    assert backend._exit_code(None) is None
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    here = socket.gethostname()
    me = {
        "evocade.host": here,
        "evocade.pid": str(os.getpid()),
        "evocade.pid-start": process_start(os.getpid()) or "",
    }
    assert not stale._creator_gone(me)
    assert stale._creator_gone({**me, "evocade.pid": finished.stdout.strip()})
    assert stale._creator_gone({**me, "evocade.pid-start": "1"})  # a reused pid
    assert not stale._creator_gone({**me, "evocade.host": "another-host", "evocade.pid": "1"})


# --- through a real engine -----------------------------------------------------------------


@pytest.mark.docker
def test_docker_backend_plays_the_pong_tracker(docker_backend, engine) -> None:
    result = evaluate(
        program("pong_tracker.py"),
        "Pong",
        seeds=[0],
        backend=docker_backend,
        env=EnvSettings(max_steps=300),
    )
    assert result.status == Status.OK, result.episodes[0].error
    assert result.backend == "docker"
    assert result.episodes[0].length == 300
    assert _our_containers(engine) == []


@pytest.mark.docker
def test_docker_backend_same_result_as_bwrap_and_no_sandbox(docker_backend, bwrap_backend) -> None:
    env = EnvSettings.deterministic(max_steps=600)
    source = program("pong_tracker.py")
    results = [
        evaluate(source, "Pong", seeds=[0, 1], env=env, backend=backend)
        for backend in (docker_backend, bwrap_backend, "none")
    ]
    docker_result = results[0]
    assert docker_result.status == Status.OK
    for other in results[1:]:
        assert other.returns == docker_result.returns, other.backend
        assert other.lengths == docker_result.lengths, other.backend
        assert [trace_of(e).actions for e in other.episodes] == [
            trace_of(e).actions for e in docker_result.episodes
        ], other.backend


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_docker_hostile_program_ends_with_its_status(name: str, docker_backend, engine) -> None:
    source, expected = HOSTILE[name]
    result = evaluate(
        source,
        "Pong",
        seeds=[0],
        env=HOSTILE_ENV,
        limits=limits_for(expected),
        backend=docker_backend,
        check=False,
    )
    episode = result.episodes[0]
    assert episode.status == expected, episode.error
    assert result.status == expected
    assert episode.error
    assert _our_containers(engine) == []


@pytest.mark.docker
def test_docker_container_is_locked_down(docker_backend, engine) -> None:
    repo = str(ROOT)
    source = (
        "import json, os\n"
        "def act(obs):\n"
        "    status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "    nets = [line.split(':')[0].strip() for line in open('/proc/net/dev')][2:]\n"
        "    try:\n"
        "        open('/opt/evocade/owned', 'w')\n"
        "        root_writable = True\n"
        "    except OSError:\n"
        "        root_writable = False\n"
        "    tmp = os.statvfs('/tmp')\n"
        "    print(json.dumps({\n"
        "        'uid': os.getuid(), 'gid': os.getgid(),\n"
        "        'cap_eff': status['CapEff'].strip(),\n"
        "        'cap_bnd': status['CapBnd'].strip(),\n"
        "        'tmp_writable': os.access('/tmp', os.W_OK),\n"
        "        'no_new_privs': status['NoNewPrivs'].strip(),\n"
        "        'nets': nets, 'root_writable': root_writable,\n"
        "        'tmp_mb': tmp.f_blocks * tmp.f_frsize // 2**20,\n"
        "        'shm': os.path.exists('/dev/shm'),\n"
        f"        'repo': os.path.exists({repo!r}),\n"
        "        'env': sorted(os.environ),\n"
        "        'pids': len([p for p in os.listdir('/proc') if p.isdigit()]),\n"
        "    }))\n"
        "    return 0\n"
    )
    result = evaluate(
        source,
        "Pong",
        seeds=[0],
        env=EnvSettings(max_steps=1),
        limits=HOSTILE_LIMITS,
        backend=docker_backend,
        check=False,
    )
    episode = result.episodes[0]
    assert episode.status == Status.OK, episode.error
    facts = json.loads(episode.output)
    assert facts["uid"] >= UID_BASE and facts["uid"] == facts["gid"]  # a uid of its own
    assert facts["cap_eff"] == "0000000000000000"
    assert facts["cap_bnd"] == "0000000000000000"
    assert facts["no_new_privs"] == "1"
    assert facts["nets"] == ["lo"]
    assert facts["root_writable"] is False
    assert facts["tmp_mb"] <= 1 and facts["tmp_writable"] is False  # nothing of the harness
    assert facts["shm"] is False
    assert facts["repo"] is False
    assert facts["pids"] == 2  # the harness and the policy runner: nothing from the host
    assert _our_containers(engine) == []


@pytest.mark.docker
def test_docker_backend_kills_a_worker_past_its_wall_clock(docker_backend, engine) -> None:
    outcome = _play_in_one_sandbox(docker_backend, SLOW_POLICY, 27_000, 0, 4.0)
    assert outcome.timed_out
    assert outcome.exit_code == -9
    assert _our_containers(engine) == []


@pytest.mark.docker
def test_docker_backend_runs_when_the_engine_lacks_the_requested_cpu(docker_backend) -> None:
    outcome = _play_in_one_sandbox(docker_backend, "def act(obs):\n    return 0\n", 5, 4095, 60.0)
    episode = json.loads(outcome.stdout)
    assert episode["status"] == "ok", (episode, outcome.stderr_tail)


@pytest.mark.docker
def test_docker_container_killed_from_outside_is_a_crash(docker_backend, engine) -> None:
    killed: list[str] = []

    def kill_when_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            running = [c for c in _our_containers(engine) if c["State"] == "running"]
            if running:
                time.sleep(2.5)  # the harness is up and the episode under way
                engine.api.kill(running[0]["Id"])
                killed.append(running[0]["Id"])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    result = evaluate(
        SLOW_POLICY,
        "Pong",
        seeds=[0],
        env=EnvSettings.deterministic(max_steps=27_000),
        limits=Limits(episode_wall_seconds=30),  # a bound, should the kill miss
        backend=docker_backend,
        check=False,
    )
    killer.join()
    assert killed
    episode = result.episodes[0]
    assert episode.status == Status.CRASHED, episode.error
    assert "signal 9" in (episode.error or "")
    assert _our_containers(engine) == []
    after = evaluate(
        program("pong_tracker.py"),
        "Pong",
        seeds=[0],
        env=EnvSettings(max_steps=50),
        backend=docker_backend,
    )
    assert after.status == Status.OK


@pytest.mark.docker
def test_docker_cgroup_memory_limit_is_reported_as_memory(engine) -> None:
    from sandbox.backends.docker import DockerBackend

    # The policy's own address-space rlimit is far above the container's memory: the cgroup's
    # OOM killer is what stops it, and Docker's OOMKilled is what names it.
    limits = Limits(memory_mb=8192, sandbox_memory_mb=400, act_seconds=10.0)
    source = HOSTILE["memory_bomb"][0]
    result = evaluate(
        source,
        "Pong",
        seeds=[0],
        env=HOSTILE_ENV,
        limits=limits,
        backend=DockerBackend(limits),
        check=False,
    )
    episode = result.episodes[0]
    assert episode.status == Status.MEMORY, episode.error
    assert "memory limit" in (episode.error or "")
    assert _our_containers(engine) == []


@pytest.mark.docker
def test_docker_backend_reaps_containers_of_dead_creators(docker_backend, engine) -> None:
    import socket

    from sandbox.backends import docker as backend

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    here = socket.gethostname()
    image = docker_backend.image
    dead = engine.api.create_container(
        image,
        command=["true"],
        labels={
            backend.LABEL: "1",
            backend.LABEL_HOST: here,
            backend.LABEL_PID: finished.stdout.strip(),
            backend.LABEL_PID_START: "1",
        },
    )["Id"]
    alive = engine.api.create_container(
        image, command=["true"], labels=dict(docker_backend.creator_labels)
    )["Id"]
    try:
        backend.DockerBackend(Limits())
        ids = {c["Id"] for c in engine.api.containers(all=True)}
        assert dead not in ids
        assert alive in ids
    finally:
        for container in (dead, alive):
            with contextlib.suppress(docker.errors.NotFound):
                engine.api.remove_container(container, force=True)


@pytest.mark.docker
def test_docker_backend_names_a_missing_image(engine) -> None:
    from sandbox.backends.docker import DockerBackend

    with pytest.raises(SandboxUnavailable, match=r"image evocade-sandbox:no-such-tag not found"):
        DockerBackend(Limits(), image="evocade-sandbox:no-such-tag")
