"""Hostile programs, run with the static checker OFF: the OS sandbox alone must contain them.

Each must end with the right status (DESIGN.md §3) and leave the host as it was: a sentinel
file unread and unchanged, no connection reaching a listener on 127.0.0.1, no process left.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from sandbox.backends.base import Backend
from sandbox.backends.uids import UID_BASE
from sandbox.evaluate import evaluate
from sandbox.results import EvaluationResult, Status
from sandbox.settings import EnvSettings, Limits
from tests.conftest import descendants, trace_of

LIMITS = Limits(act_seconds=1.0, episode_cpu_seconds=5)
# A memory bomb must reach the memory limit before any clock stops it: on a loaded machine
# filling 256 MB can take longer than a 1 s act(), which made it `timeout` (issue #11, flaky).
# The CPU rlimit (5 s) still bounds it.
MEMORY_LIMITS = LIMITS.model_copy(update={"act_seconds": 20.0})


def limits_for(expected: Status) -> Limits:
    """The limits a HOSTILE program plays under: no outcome may depend on the machine's speed."""
    return MEMORY_LIMITS if expected == Status.MEMORY else LIMITS


ENV = EnvSettings(max_steps=50)

HOSTILE = {
    "infinite_loop": ("def act(obs):\n    while True:\n        pass\n", Status.TIMEOUT),
    "c_level_cpu_bomb": ("def act(obs):\n    return 10**10**8\n", Status.TIMEOUT),
    "memory_bomb": (
        "def act(obs):\n    hog = []\n    while True:\n        hog.append(bytearray(10**7))\n",
        Status.MEMORY,
    ),
    "huge_allocation": ("def act(obs):\n    return len(bytearray(10**11))\n", Status.MEMORY),
    "fork": ("import os\ndef act(obs):\n    os.fork()\n    return 0\n", Status.ERROR),
    "fork_at_import": ("import os\nos.fork()\ndef act(obs):\n    return 0\n", Status.ERROR),
    "subprocess": (
        "import subprocess\ndef act(obs):\n    subprocess.run(['/bin/true'])\n    return 0\n",
        Status.ERROR,
    ),
    "returns_none": ("def act(obs):\n    return None\n", Status.INVALID_ACTION),
    "returns_nan": ("def act(obs):\n    return float('nan')\n", Status.INVALID_ACTION),
    "returns_99": ("def act(obs):\n    return 99\n", Status.INVALID_ACTION),
    "returns_huge_int": ("def act(obs):\n    return 10**5000\n", Status.INVALID_ACTION),
    "returns_bool": ("def act(obs):\n    return True\n", Status.INVALID_ACTION),
    "raises": ("def act(obs):\n    raise ValueError('boom')\n", Status.ERROR),
    "exits": ("import sys\ndef act(obs):\n    sys.exit(3)\n", Status.ERROR),
    "kills_parent": (
        "import os, signal\ndef act(obs):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    return 0\n",
        Status.ERROR,
    ),
    # libc is already mapped, so this reaches native code, which kills its own process.
    "ctypes_libc_abort": (
        "import ctypes\ndef act(obs):\n    ctypes.CDLL('libc.so.6').abort()\n    return 0\n",
        Status.CRASHED,
    ),
    # A library not yet loaded needs executable memory, which seccomp refuses.
    "ctypes_load_new_library": (
        "import ctypes\ndef act(obs):\n    ctypes.CDLL('libutil.so.1')\n    return 0\n",
        Status.ERROR,
    ),
}


def _play(source: str, backend: Backend, limits: Limits = LIMITS) -> EvaluationResult:
    result = evaluate(
        source, "Pong", seeds=[0], env=ENV, limits=limits, backend=backend, check=False
    )
    assert len(result.episodes) == 1
    return result


@pytest.mark.bwrap
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_ends_with_its_status(name: str, bwrap_backend) -> None:
    source, expected = HOSTILE[name]
    result = _play(source, bwrap_backend, limits_for(expected))
    episode = result.episodes[0]
    assert episode.status == expected, episode.error
    assert result.status == expected
    assert episode.error
    assert descendants() == []


@pytest.mark.bwrap
def test_hostile_program_cannot_read_or_change_a_host_file(tmp_path: Path, bwrap_backend) -> None:
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("untouched")
    os.chmod(tmp_path, 0o777)
    os.chmod(sentinel, 0o666)  # even a world-writable file must stay out of reach
    before = sentinel.stat()
    source = (
        "def act(obs):\n"
        f"    data = open({str(sentinel)!r}).read()\n"
        f"    open({str(sentinel)!r}, 'w').write('owned')\n"
        "    return 0\n"
    )
    episode = _play(source, bwrap_backend).episodes[0]
    assert episode.status == Status.ERROR
    assert "FileNotFoundError" in (episode.error or "")
    after = sentinel.stat()
    assert sentinel.read_text() == "untouched"
    assert (after.st_mtime_ns, after.st_atime_ns) == (before.st_mtime_ns, before.st_atime_ns)


@pytest.mark.bwrap
def test_hostile_program_cannot_connect_to_the_host(bwrap_backend) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        source = (
            "import socket\n"
            "def act(obs):\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "    return 0\n"
        )
        episode = _play(source, bwrap_backend).episodes[0]
    finally:
        stop.set()
        watcher.join()
        listener.close()
    assert episode.status == Status.ERROR
    assert accepted == []


@pytest.mark.bwrap
def test_hostile_program_sees_no_host_processes_or_repository(bwrap_backend) -> None:
    repo = Path(__file__).resolve().parents[2]
    source = (
        "import json, os\n"
        "def act(obs):\n"
        "    try:\n"
        f"        repo = sorted(os.listdir({str(repo)!r}))\n"
        "    except OSError:\n"
        "        repo = None\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    others = []\n"
        "    for pid in pids:\n"
        "        if int(pid) != os.getpid():\n"
        "            status = open('/proc/%s/status' % pid).read().splitlines()\n"
        "            uid = [l for l in status if l.startswith('Uid:')][0].split()[1]\n"
        "            others.append(int(uid))\n"
        "    print(json.dumps([len(pids), os.getuid(), others, os.getppid(), repo]))\n"
        "    return 0\n"
    )
    result = evaluate(
        source,
        "Pong",
        seeds=[0],
        env=EnvSettings(max_steps=1),
        limits=LIMITS,
        backend=bwrap_backend,
        check=False,
    )
    episode = result.episodes[0]
    assert episode.status == Status.OK, episode.error
    n_pids, uid, others, parent, repo_listing = json.loads(episode.output)
    # A uid pair of the sandbox's own: the policy's is not the harness's, nor anybody's.
    harness_uids = [other for other in others if other >= UID_BASE]  # its stub and harness
    assert uid >= UID_BASE and len(set(harness_uids)) == 1 and uid not in others
    assert n_pids <= 4  # bwrap's init, its stub, the harness, the runner: nothing from the host
    assert parent == 0  # forked by its keeper, which stays outside the sandbox's pid namespace
    # At most the virtualenv is visible where the repository lives: no source, no database.
    assert repo_listing in (None, [], [".venv"])


@pytest.mark.bwrap
def test_policy_process_holds_nothing_of_the_harness(bwrap_backend) -> None:
    """The policy interpreter is forked from a zygote that never imported the emulator stack:
    no emulator to look ahead with, no harness module, nothing the fork server loaded."""
    source = (
        "import gc, json, sys\n"
        "def act(obs):\n"
        "    stacks = ('ale_py', 'gymnasium', 'ocatari', 'numpy', 'sandbox.runtime.harness',\n"
        "              'sandbox.backends', 'socket')\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith(stacks))\n"
        "    kinds = sorted({type(o).__module__ for o in gc.get_objects()\n"
        "                    if type(o).__module__.startswith(('ale_py', 'ocatari', 'gym'))})\n"
        "    print(json.dumps([loaded, kinds]))\n"
        "    return 0\n"
    )
    result = evaluate(
        source,
        "Pong",
        seeds=[0],
        env=EnvSettings(max_steps=1),
        limits=LIMITS,
        backend=bwrap_backend,
        check=False,
    )
    episode = result.episodes[0]
    assert episode.status == Status.OK, episode.error
    assert json.loads(episode.output) == [[], []]


@pytest.mark.bwrap
def test_int_enum_actions_are_accepted(bwrap_backend) -> None:
    source = (
        "from enum import IntEnum\n"
        "class Action(IntEnum):\n"
        "    NOOP = 0\n"
        "    UP = 2\n"
        "def act(obs):\n"
        "    return Action.UP\n"
    )
    result = evaluate(
        source,
        "Pong",
        seeds=[0],
        env=EnvSettings(max_steps=20),
        limits=LIMITS,
        backend=bwrap_backend,
    )
    assert result.status == Status.OK, result.episodes[0].error
    assert set(trace_of(result.episodes[0]).actions) == {"2"}


@pytest.mark.bwrap
def test_stale_cgroups_of_dead_makers_are_reaped_whatever_their_age(bwrap_backend) -> None:
    from sandbox.backends.cgroups import SandboxCgroup, reap_stale_groups

    dead = SandboxCgroup(memory_mb=128, pids=8, cpu=0)
    # As left behind by an engine killed with SIGKILL: named for a process that is gone.
    dead.name = f"evocade/{_dead_pid()}-12345-{os.urandom(6).hex()}"
    dead.dirs = [path.parent / dead.name.split("/")[1] for path in dead.dirs]
    alive = SandboxCgroup(memory_mb=128, pids=8, cpu=0)  # named for this live process
    dead.create()
    alive.create()
    try:
        reap_stale_groups(max_age_seconds=3600)
        assert not any(path.exists() for path in dead.dirs)  # seconds old, yet gone
        assert all(path.exists() for path in alive.dirs)
    finally:
        dead.remove()
        alive.remove()


def _dead_pid() -> int:
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid += 1
    return pid
