"""Warm sandboxes (sandbox/pool.py): one request each, nothing carried over, dead ones replaced,
nothing left behind after the run, after SIGTERM, and after kill -9 of the parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sandbox.backends.base import Prepare, SandboxUsed, WarmSandbox
from sandbox.backends.cgroups import CGROUP_ROOT, GROUP_PREFIX
from sandbox.episodes import EpisodeRequest, RunnerClosed
from sandbox.evaluate import evaluate
from sandbox.pool import WarmPool, episode_spec
from sandbox.results import Status
from sandbox.settings import EnvSettings, Limits
from tests.conftest import backend_or_skip, descendants, program

REPO = Path(__file__).resolve().parents[2]
ENV = EnvSettings.deterministic(max_steps=30)
WAIT_SECONDS = 120.0  # generous: a loaded machine

# What one program leaves behind, if it could: files, module state, its cgroup, its uids.
MARKER_PROGRAM = """
import os, sys
for path in ("/tmp/evocade-marker", "/dev/shm/evocade-marker"):
    try:
        open(path, "w").write("left behind")
    except OSError:
        pass
import sandbox.runtime.policy_runner as runner
runner.LEFT_BEHIND = "module state"
sys.modules["evocade_marker"] = runner
MEMORY = [line for line in open("/proc/self/cgroup") if ":memory:" in line][0].strip()
NAMESPACES = os.readlink("/proc/self/ns/cgroup") + MEMORY, os.readlink("/proc/self/ns/mnt")
print(*NAMESPACES, os.getuid())
def act(obs):
    return 0
"""
LOOKING_PROGRAM = """
import os, sys
import sandbox.runtime.policy_runner as runner
found = [p for p in ("/tmp/evocade-marker", "/dev/shm/evocade-marker") if os.path.exists(p)]
found += [name for name in ("LEFT_BEHIND",) if hasattr(runner, name)]
found += [name for name in ("evocade_marker",) if name in sys.modules]
found += sorted(os.listdir("/tmp"))
MEMORY = [line for line in open("/proc/self/cgroup") if ":memory:" in line][0].strip()
NAMESPACES = os.readlink("/proc/self/ns/cgroup") + MEMORY, os.readlink("/proc/self/ns/mnt")
print(*NAMESPACES, os.getuid(), found)
def act(obs):
    return 0
"""


def _request(source: str, seed: int = 0, restricted: bool = False) -> EpisodeRequest:
    return EpisodeRequest(source, "Pong", seed, ENV, Limits(), restricted=restricted)


@pytest.fixture(params=["bwrap", "docker"])
def backend(request):
    if request.param == "docker":
        request.applymarker(pytest.mark.docker)
    return backend_or_skip(request.param)


def _wait_warm(pool: WarmPool, index: int = 0):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        slot = pool._slots[index]
        if slot.warming.is_set() and slot.warm is not None and slot.warm.alive():
            return slot.warm
        time.sleep(0.05)
    raise AssertionError("the slot never got a warm sandbox")


@pytest.mark.bwrap
def test_pool_warm_sandbox_serves_one_request_only(backend) -> None:
    sandbox = backend.start_sandbox(0, Prepare("Pong", 4, 0.0))
    try:
        assert sandbox.wait_ready(WAIT_SECONDS)
        spec = episode_spec(_request(program("pong_tracker.py"))).to_json()
        first = json.loads(sandbox.run(spec, WAIT_SECONDS).stdout)
        assert first["status"] == "ok" and first["length"] == ENV.max_steps
        with pytest.raises(SandboxUsed):
            sandbox.run(spec, WAIT_SECONDS)
        assert not sandbox.alive()
    finally:
        sandbox.destroy()


@pytest.mark.bwrap
def test_pool_nothing_of_one_program_reaches_the_next(backend) -> None:
    with WarmPool(backend, slots=1, owns_backend=False) as pool:
        pool.prewarm(Prepare("Pong", 4, 0.0))
        first = pool.run(_request(MARKER_PROGRAM))
        second = pool.run(_request(LOOKING_PROGRAM))
    assert first.status == second.status == Status.OK, (first.error, second.error)
    *namespaces_first, uid_first = first.output.split()
    *namespaces_second, uid_second, found = second.output.strip().split(maxsplit=3)
    assert found == "[]", second.output  # no file, no module state, nothing in /tmp
    # Its own cgroup (a namespace of its own on bwrap, the container's on docker) and mount
    # namespace, its own uid: nothing shared with the first. The two sandboxes' cgroup
    # namespaces exist at once (the second is warmed while the first plays), so their ids
    # differ; the policy's mount namespace is made when its episode starts, when the first may
    # be gone and the kernel may reuse its id: that one is compared with the host's.
    assert namespaces_first[0] != namespaces_second[0]
    host_mnt = os.readlink("/proc/self/ns/mnt")
    assert host_mnt not in (namespaces_first[1], namespaces_second[1])
    assert uid_first != uid_second


# Ends its episode with a 3 MB message written straight to the reply pipe (the runner's own
# cap is in the untrusted process; the harness's is not): split_reply_oversize's attack.
REPLY_FLOOD_PROGRAM = """
import os, sys
steps = 0
def act(obs):
    global steps
    steps += 1
    if steps == 20:
        os.write(int(sys.argv[2]), b'{"end": true, "output": "' + b"x" * 3_000_000 + b'"}\\n')
    return 0
"""
# Prints far past the output cap at every step, through print() (the runner keeps the cap).
PRINT_FLOOD_PROGRAM = """
def act(obs):
    print("y" * 100_000)
    return 0
"""


def test_pool_one_flooding_episode_leaves_its_siblings_ok(backend) -> None:
    """Round two: a policy that emitted megabytes made its siblings in the same worker come
    back "crashed, sandbox died". Here flooding episodes and clean ones share a two-slot pool,
    played concurrently in whatever order the scheduler gives: each flood ends on its own
    (the harness cuts the reply: crashed; print() past the cap: ok, output cut), and every
    clean episode is exactly what it is in a pool of its own."""
    from concurrent.futures import ThreadPoolExecutor

    clean = program("pong_tracker.py")
    env = EnvSettings.deterministic(max_steps=200)

    def request(source: str, seed: int) -> EpisodeRequest:
        return EpisodeRequest(source, "Pong", seed, env, Limits(), restricted=False)

    with WarmPool(backend, slots=1, owns_backend=False) as pool:
        alone = {seed: pool.run(request(clean, seed)) for seed in (0, 1)}
    for episode in alone.values():
        assert episode.status == Status.OK, episode.error
    mixed = [
        (REPLY_FLOOD_PROGRAM, 0),
        (clean, 0),
        (PRINT_FLOOD_PROGRAM, 1),
        (clean, 1),
        (REPLY_FLOOD_PROGRAM, 1),
        (PRINT_FLOOD_PROGRAM, 0),
        (clean, 0),
        (clean, 1),
    ]
    with (
        WarmPool(backend, slots=2, owns_backend=False) as pool,
        ThreadPoolExecutor(max_workers=2) as threads,
    ):
        episodes = list(threads.map(lambda job: pool.run(request(*job)), mixed))
    for (source, seed), episode in zip(mixed, episodes, strict=True):
        if source is REPLY_FLOOD_PROGRAM:
            assert episode.status == Status.CRASHED, episode.error
            assert "sent a message of more than" in (episode.error or "")
        elif source is PRINT_FLOOD_PROGRAM:
            assert episode.status == Status.OK, episode.error
            assert len(episode.output) <= Limits().output_bytes + 100
        else:
            assert episode.status == Status.OK, episode.error
            expected = alone[seed]
            assert (episode.episode_return, episode.length) == (
                expected.episode_return,
                expected.length,
            )
            assert episode.trace is not None and expected.trace is not None
            assert episode.trace.actions == expected.trace.actions


@pytest.mark.bwrap
def test_pool_warm_sandbox_killed_while_idle_is_replaced_not_used(backend) -> None:
    with WarmPool(backend, slots=1, owns_backend=False) as pool:
        pool.prewarm(Prepare("Pong", 4, 0.0))
        warm = _wait_warm(pool)
        _kill_warm(backend.name, warm)
        episode = pool.run(_request(program("pong_tracker.py")))
        assert episode.status == Status.OK, episode.error
        assert pool.stats.replaced_dead == 1


@pytest.mark.bwrap
def test_pool_counts_the_time_episodes_wait_for_a_sandbox(backend) -> None:
    """Nothing prewarmed: the first episode waits for a cold start, and that wait is counted
    (it is idle time for the slot, however busy the scheduler thinks it); the second finds the
    sandbox warmed behind the first."""
    with WarmPool(backend, slots=1, owns_backend=False) as pool:
        started = time.monotonic()
        first = pool.run(_request(program("pong_tracker.py")))
        cold_wait = pool.stats.waited_seconds
        _wait_warm(pool)
        second = pool.run(_request(program("pong_tracker.py"), seed=1))
        wall = time.monotonic() - started
    assert first.status == second.status == Status.OK, (first.error, second.error)
    assert (pool.stats.served_cold, pool.stats.served_warm) == (1, 1)
    assert 0.0 < cold_wait <= pool.stats.waited_seconds <= wall


def _kill_warm(name: str, warm) -> None:
    if name == "docker":
        warm.client.api.kill(warm.container_id)
    else:
        os.killpg(warm.stub.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + WAIT_SECONDS
    while warm.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not warm.alive()


@pytest.mark.bwrap
def test_pool_closed_cuts_episodes_short_and_refuses_more(backend) -> None:
    import threading

    slow = "import time\ndef act(obs):\n    time.sleep(0.01)\n    return 0\n"
    long_env = EnvSettings.deterministic(max_steps=27_000)
    pool = WarmPool(backend, slots=1, owns_backend=False)
    outcome: list[BaseException | object] = []

    def play() -> None:
        try:
            outcome.append(pool.run(EpisodeRequest(slow, "Pong", 0, long_env, Limits(), False)))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=play)
    thread.start()
    _wait_until_an_episode_runs(pool)
    pool.close()
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive()
    assert isinstance(outcome[0], RunnerClosed)
    with pytest.raises(RunnerClosed):
        pool.run(_request(program("pong_tracker.py")))
    assert descendants() == []


def _used(sandbox: WarmSandbox) -> bool:
    """Whether the sandbox has been handed its episode: a flag both backends' sandboxes keep,
    which the `WarmSandbox` protocol does not promise (hence read through `vars`)."""
    used: bool = vars(sandbox)["_used"]
    return used


def _wait_until_an_episode_runs(pool: WarmPool) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if pool._active and all(_used(sandbox) for sandbox in pool._active):
            time.sleep(0.5)  # well into the episode (27,000 slow steps take minutes)
            return
        time.sleep(0.05)
    raise AssertionError("no episode started")


@pytest.mark.bwrap
def test_pool_leaves_nothing_behind_after_the_run(backend) -> None:
    before = _our_groups()
    result = evaluate(program("pong_tracker.py"), "Pong", seeds=[0, 1, 2], env=ENV, backend=backend)
    assert result.status == Status.OK
    assert descendants() == []
    assert _our_groups() == before == []
    if backend.name == "docker":
        assert _containers_made_by(os.getpid()) == []


def _our_groups(pid: int | None = None) -> list[Path]:
    """This process's sandbox cgroups (named after their maker)."""
    tag = f"{pid or os.getpid()}-"
    found = []
    for controller in ("memory", "pids", "cpuset"):
        parent = CGROUP_ROOT / controller / GROUP_PREFIX
        if parent.is_dir():
            found += [group for group in parent.iterdir() if group.name.startswith(tag)]
    return found


def _containers_made_by(pid: int) -> list[dict]:
    from sandbox.backends.docker import LABEL_PID
    from sandbox.backends.docker_image import connect_engine

    client = connect_engine()
    try:
        return client.api.containers(all=True, filters={"label": f"{LABEL_PID}={pid}"})
    finally:
        client.close()


PARENT_SCRIPT = """
import sys, time
from sandbox.evaluate import make_backend
from sandbox.episodes import EpisodeRequest
from sandbox.pool import WarmPool
from sandbox.settings import EnvSettings, Limits
import threading
slow = "import time\\ndef act(obs):\\n    time.sleep(0.01)\\n    return 0\\n"
pool = WarmPool(make_backend(sys.argv[1], Limits()), slots=2)
env = EnvSettings.deterministic(max_steps=27_000)
request = EpisodeRequest(slow, "Pong", 0, env, Limits(), restricted=False)
threading.Thread(target=pool.run, args=(request,), daemon=True).start()
while not (pool._active and all(s._used for s in pool._active)):
    time.sleep(0.05)
print("playing", flush=True)
time.sleep(3600)
"""


@pytest.mark.bwrap
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_pool_leaves_nothing_behind_after_its_parent_dies(backend, how) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PARENT_SCRIPT), backend.name],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == b"playing"
    assert _our_groups(parent.pid) or backend.name == "docker"
    parent.send_signal(how)
    parent.wait(WAIT_SECONDS)
    # The sandboxes die with the pipes their parent held (all but one caught half-started by
    # bwrap, which waits forever for its dead parent); the next start reaps what remains.
    deadline = time.monotonic() + WAIT_SECONDS
    while len(set(_processes_in_groups_of(parent.pid))) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    from sandbox.evaluate import make_backend

    make_backend(backend.name, Limits()).close()  # a new start: reaps its leftovers
    left = _processes_in_groups_of(parent.pid)
    assert left == [], [_describe(pid) for pid in set(left)]
    assert _our_groups(parent.pid) == []
    if backend.name == "docker":
        assert _containers_made_by(parent.pid) == []


def _processes_in_groups_of(pid: int) -> list[int]:
    found = []
    for group in _our_groups(pid):
        try:
            found += [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            continue
    return found


def _describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:40]
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        fds = sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError as error:
        return f"{pid}: {error}"
    state = [line for line in status if line.startswith(("State", "PPid", "Uid"))]
    return f"{pid}: {cmdline!r} {state} fds={fds}"
