"""Faults injected into a real optimization run: the run goes on, or stops with a clear error,
and nothing it committed is lost.

Each test drives `engine.loop.optimize` with short Pong episodes on a real SQLite file and a
real sandbox, and breaks one thing at a known moment (a proposer wrapper marks the moment):

- the sandbox killed mid-episode (bwrap): that episode is `crashed`, the loop goes on;
- the Docker engine gone mid-episode and back (a proxy between client and engine cuts every
  connection and refuses new ones; the shared engine itself is never restarted, see
  `switch.py`): `crashed`, the loop goes on, no container is left; an engine still down when
  the next evaluation starts stops the run with the reason, and `--resume` continues it;
- the disk under the database full (an 8 MB tmpfs mounted for the test and filled up): the run
  stops with a StorageError, the database opens afterwards with everything committed before;
- the database locked by another writer (a second connection holding BEGIN IMMEDIATE): shorter
  than the busy timeout, the loop waits and goes on; longer, it stops with a StorageError that
  says so, nothing committed is lost, and resuming finishes the run;
- the LLM endpoint down for minutes (refused connections, then HTTP 500s, with the proposer's
  sleep injected so that no real time passes): every failed call is recorded, the iterations
  without a program are recorded, and the run goes on once the endpoint answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypedDict

import pytest

from engine.config import RunConfig
from engine.loop import optimize
from engine.proposers.base import Proposal, ProposalContext, Proposer, ProposerName
from engine.proposers.llm import LlmProposer
from engine.proposers.mutate import MutationProposer
from sandbox.backends.base import SandboxUnavailable
from storage import StorageError, Store
from tests.adversarial.conftest import leftover_processes
from tests.adversarial.switch import Switch
from tests.conftest import descendants
from tests.engine.scripted_llm import DEFAULT_PROGRAM, Answer, ScriptedLLM
from tests.engine.scripted_llm import Status as HttpStatus


class _Short(TypedDict):
    game: str
    episodes: int
    max_steps: int
    smoke_max_steps: int
    concurrency: int


# One candidate at a time: these tests inject a fault at a given proposal and read what follows
# in order (concurrency itself is tested in tests/engine/population and tests/engine/test_loop).
SHORT: _Short = {
    "game": "Pong",
    "episodes": 2,
    "max_steps": 200,
    "smoke_max_steps": 60,
    "concurrency": 1,
}


class Hooked:
    """A proposer that calls `hooks[i]()` before its i-th proposal (0-based): the fault moment.
    `sources[i]`, if given, replaces the i-th proposal's program (the inner proposer is still
    asked, so the proposals after it are the ones it would have made anyway)."""

    def __init__(
        self,
        inner: Proposer,
        hooks: dict[int, Callable[[], object]],
        sources: dict[int, str] | None = None,
    ) -> None:
        self.name: ProposerName = inner.name
        self.inner = inner
        self.hooks = hooks
        self.sources = sources or {}
        self.calls = 0

    def propose(self, context: ProposalContext) -> Proposal:
        index = self.calls
        self.calls += 1
        hook = self.hooks.get(index)
        if hook is not None:
            hook()
        proposal = self.inner.propose(context)
        if index in self.sources:
            return dataclasses.replace(proposal, source=self.sources[index], note="stalls")
        return proposal


def _iteration_statuses(store: Store, run_id: str) -> list[str]:
    return [
        str((event.data or {}).get("status"))
        for event in store.events(run_id)
        if event.kind == "iteration"
    ]


def _evaluation_count(store: Store, run_id: str) -> int:
    return sum(len(store.evaluations(row.program_id)) for row in store.history(run_id))


def _integrity(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


# The program whose episode a fault must land in: its first act() spins until the sandbox is
# killed or cut (the act limit, STALL_ACT_SECONDS, lies far beyond the test's wait). An episode
# that ends on its own would race the fault on a loaded machine; this one cannot end before it.
STALLING_PROGRAM = (
    "def act(obs):\n    spins = 0\n    while spins >= 0:\n        spins += 1\n    return 0\n"
)
STALL_ACT_SECONDS = 300.0
# CPU a policy process has burnt before it is taken for the stalling one: the seed program's
# episodes (the default policy, 200 steps) use a small fraction of it, however loaded the
# machine is, since this is CPU time and not wall time.
STALL_CPU_SECONDS = 3.0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a host process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the sandbox killed mid-episode --------------------------------------------------------------


def _process_tree() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, comm, cmdline) for every process."""
    tree = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        tree[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), comm, cmdline)
    return tree


def _sandbox_init_of_the_stalling_episode() -> int | None:
    """The first process (bwrap's init) of one of this test's sandboxes whose policy process
    is in the stalling episode: it has loaded its seccomp filter (a warm one, waiting, has not)
    and burnt STALL_CPU_SECONDS. Only this process's descendants: other test runs on the
    machine have sandboxes too."""
    tree = _process_tree()
    mine = set(descendants())
    for pid, (_, _, cmdline) in tree.items():
        if pid not in mine or "sandbox.runtime.policy_" not in cmdline:  # runner or zygote
            continue
        try:
            confined = "Seccomp:\t2" in Path(f"/proc/{pid}/status").read_text()
            namespace = os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            continue
        if not confined or _cpu_seconds(pid) < STALL_CPU_SECONDS:
            continue
        for other, (_, comm, _) in tree.items():
            try:
                if (
                    other in mine
                    and comm == "bwrap"
                    and os.readlink(f"/proc/{other}/ns/pid") == namespace
                ):
                    return other
            except OSError:
                continue
    return None


@pytest.mark.bwrap
def test_fault_sandbox_killed_mid_episode_is_crashed_and_the_loop_goes_on(
    tmp_path: Path, bwrap_backend, record
) -> None:
    armed = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        armed.wait(120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pid = _sandbox_init_of_the_stalling_episode()
            if pid is not None:  # killing a pid namespace's init kills everything in it
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    proposer = Hooked(MutationProposer(seed=5), {0: armed.set}, {0: STALLING_PROGRAM})
    config = RunConfig(**SHORT, iterations=2, sandbox="bwrap", act_seconds=STALL_ACT_SECONDS)
    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(store, config, proposer, seed_program=DEFAULT_PROGRAM)
        thread.join(5)
        statuses = _iteration_statuses(store, outcome.run_id)
        history = store.history(outcome.run_id)
        evaluations = store.evaluations(history[1].program_id)
        run = store.get_run(outcome.run_id)
        seed_evaluations = store.evaluations(history[0].program_id)
    assert killed, "no episode was seen running"
    assert statuses[0] == "crashed"
    assert evaluations[-1].status == "crashed"
    errors = [episode.get("error") or "" for episode in evaluations[-1].episodes]
    assert any("killed by signal 9" in error for error in errors), errors
    assert outcome.reason == "iterations" and outcome.iterations == 2
    assert run.status == "finished"
    assert statuses[1] == "ok"
    # smoke, training and held-out, untouched
    assert [e.status for e in seed_evaluations] == ["ok", "ok", "ok"]
    assert _integrity(tmp_path / "run.db") == "ok"
    assert leftover_processes() == []
    record(
        fault="bwrap sandbox killed (SIGKILL) mid-episode",
        outcome=(
            'the episode is recorded crashed ("the sandbox died (killed by signal 9) before '
            'reporting this episode"); the loop goes on and finishes its iterations; '
            "no process is left"
        ),
    )


# -- the Docker engine gone and back -------------------------------------------------------------


@pytest.fixture
def docker_switch(monkeypatch: pytest.MonkeyPatch, docker_backend) -> Iterator[Switch]:
    """A proxy in front of the real engine; DOCKER_HOST points at the proxy for this test."""
    real = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not real.startswith("unix://"):
        pytest.skip("the engine proxy handles unix sockets only")
    directory = tempfile.mkdtemp(prefix="evadv-", dir="/tmp")
    switch = Switch(listen=f"{directory}/docker.sock", target=real[len("unix://") :]).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{switch.address}")
    yield switch
    switch.stop()
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def _containers_on(real_host: str) -> list[tuple[str, bool]]:
    """(id, whether its policy process is in the stalling episode) for each container of ours,
    asked of the engine itself, past the proxy (the engine runs on this host: `top` gives host
    pids, whose CPU time /proc has)."""
    import docker

    client = docker.DockerClient(base_url=real_host, timeout=10)
    found = []
    try:
        for info in client.api.containers(
            all=True, filters={"label": f"evocade.pid={os.getpid()}"}
        ):
            running = False
            if info.get("State") == "running":
                top = client.api.top(info["Id"])
                pid_column = (top.get("Titles") or []).index("PID")
                running = any(
                    "policy_runner" in " ".join(map(str, row))
                    and _cpu_seconds(int(row[pid_column])) >= STALL_CPU_SECONDS
                    for row in top.get("Processes") or []
                )
            found.append((info["Id"], running))
    finally:
        client.close()
    return found


@pytest.mark.docker
def test_fault_docker_engine_lost_mid_episode_is_crashed_and_the_loop_goes_on(
    tmp_path: Path, docker_switch: Switch, record
) -> None:
    real_host = f"unix://{docker_switch.target}"
    armed, restored = threading.Event(), threading.Event()
    cut: list[float] = []
    left_after_cut: list[str] = []

    def outage() -> None:
        armed.wait(120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
            running for _, running in _containers_on(real_host)
        ):
            time.sleep(0.05)
        docker_switch.down()
        cut.append(time.monotonic())
        time.sleep(1.0)
        left_after_cut.extend(container for container, _ in _containers_on(real_host))
        docker_switch.up()
        restored.set()

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    proposer = Hooked(
        MutationProposer(seed=5),
        {0: armed.set, 1: lambda: restored.wait(120)},
        {0: STALLING_PROGRAM},
    )
    config = RunConfig(**SHORT, iterations=2, sandbox="docker", act_seconds=STALL_ACT_SECONDS)
    with Store.open(tmp_path / "run.db") as store:
        outcome = optimize(store, config, proposer, seed_program=DEFAULT_PROGRAM)
        thread.join(5)
        statuses = _iteration_statuses(store, outcome.run_id)
        history = store.history(outcome.run_id)
        evaluation = store.evaluations(history[1].program_id)[-1]
        run = store.get_run(outcome.run_id)
    assert cut, "the engine was never cut"
    assert statuses[0] == "crashed", statuses
    assert evaluation.status == "crashed"
    errors = " ".join(episode.get("error") or "" for episode in evaluation.episodes)
    assert "Docker engine failed this sandbox" in errors or "attach stream broke" in errors
    assert outcome.reason == "iterations" and run.status == "finished"
    assert statuses[1] == "ok"
    assert _integrity(tmp_path / "run.db") == "ok"
    assert left_after_cut, "the cut worker should have been unable to remove its container"
    assert [container for container, _ in _containers_on(real_host)] == []  # removed since
    record(
        fault="Docker engine unreachable mid-episode, back a second later",
        outcome=(
            'the cut episode is recorded crashed ("the Docker engine failed this sandbox"); '
            "a sandbox started during the outage is tried again until the engine answers; "
            "the loop goes on and finishes; the container the worker could not remove is "
            "removed once the engine is back (by the next worker or when the pool closes); "
            "none is left"
        ),
    )


@pytest.mark.docker
def test_fault_docker_engine_briefly_down_when_a_sandbox_starts_is_ridden_out(
    docker_switch: Switch, record
) -> None:
    """Down when the pool starts a sandbox, back once the pool has been refused at least once:
    the start is tried again until the engine answers, and the episode plays. (Down for good,
    the error reaches the run after `UNAVAILABLE_SECONDS`: the next test.)"""
    from sandbox.backends.docker import DockerBackend
    from sandbox.episodes import EpisodeRequest
    from sandbox.pool import WarmPool
    from sandbox.settings import EnvSettings, Limits

    backend = DockerBackend(Limits())  # made while the engine answers
    request = EpisodeRequest(
        DEFAULT_PROGRAM, "Pong", 0, EnvSettings.deterministic(max_steps=30), Limits()
    )
    docker_switch.down()
    with WarmPool(backend, slots=1) as pool:  # nothing prewarmed: the start is cold

        def back_after_a_refusal() -> None:
            deadline = time.monotonic() + 120
            while pool.stats.unavailable_retries == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            docker_switch.up()

        restorer = threading.Thread(target=back_after_a_refusal, daemon=True)
        restorer.start()
        try:
            episode = pool.run(request)
        finally:
            restorer.join(130)
            docker_switch.up()
        retries = pool.stats.unavailable_retries
    assert episode.status == "ok", episode.error
    assert retries >= 1
    record(
        fault="Docker engine down when a sandbox is started, back after the first refusal",
        outcome="the pool tries the start again until the engine answers; the episode plays",
    )


@pytest.mark.docker
def test_fault_docker_engine_down_between_evaluations_stops_and_resumes(
    tmp_path: Path, docker_switch: Switch, record, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandbox.pool

    # The pool tries again for a minute before an engine that does not come back is an error
    # (the mid-episode test rides out a one-second outage that way): a few seconds here.
    monkeypatch.setattr(sandbox.pool, "UNAVAILABLE_SECONDS", 3.0)
    proposer = Hooked(MutationProposer(seed=6), {1: docker_switch.down})
    config = RunConfig(**SHORT, iterations=2, sandbox="docker")
    db = tmp_path / "run.db"
    with Store.open(db) as store:
        with pytest.raises(SandboxUnavailable, match="no Docker engine answers"):
            optimize(store, config, proposer)
        (run,) = store.runs()
        before = _evaluation_count(store, run.run_id)
        statuses = _iteration_statuses(store, run.run_id)
        assert store.get_run(run.run_id).status == "failed"  # it says why it stopped
    assert len(statuses) == 1 and before >= 3  # the seed's evaluations and iteration 0's
    docker_switch.up()
    with Store.open(db) as store:
        outcome = optimize(store, config, MutationProposer(seed=6), run_id=run.run_id)
        statuses = _iteration_statuses(store, outcome.run_id)
        kinds = [event.kind for event in store.events(outcome.run_id)]
        after = _evaluation_count(store, outcome.run_id)
    assert outcome.reason == "iterations" and len(statuses) == 2
    assert "run_failed" in kinds and "run_resumed" in kinds and kinds[-1] == "run_finished"
    assert after > before
    record(
        fault="Docker engine down when the next evaluation starts",
        outcome=(
            "the pool tries to start a sandbox again for a minute (3 s in this test), then "
            'optimize stops with SandboxUnavailable ("no Docker engine answers at ...") before '
            "anything is played, the run marked failed with that reason; everything committed "
            "stays; --resume continues the run"
        ),
    )


# -- the disk under the database full ------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """An 8 MB tmpfs mounted for this test (needs root and mount privileges)."""
    directory = Path(tempfile.mkdtemp(prefix="evadv-disk-", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        directory.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield directory
    subprocess.run(["umount", "-l", str(directory)], check=False)
    with contextlib.suppress(OSError):
        directory.rmdir()


def _fill(directory: Path) -> Path:
    """Write zeros until the file system says ENOSPC."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * (1 << 16))
    return filler


@pytest.mark.bwrap
def test_fault_disk_full_stops_cleanly_and_keeps_what_was_committed(
    small_disk: Path, bwrap_backend, record
) -> None:
    db = small_disk / "run.db"
    committed: list[str] = []
    filled: list[Path] = []
    proposer = Hooked(MutationProposer(seed=7), {1: lambda: filled.append(_fill(small_disk))})
    config = RunConfig(**SHORT, iterations=30, sandbox="bwrap")
    with Store.open(db) as store:
        original = store.record_evaluation

        def counting(*args, **kwargs):
            evaluation = original(*args, **kwargs)
            committed.append(evaluation.id)
            return evaluation

        store.record_evaluation = counting  # type: ignore[method-assign]
        with pytest.raises(StorageError) as failure:
            optimize(store, config, proposer)
    assert filled, "the disk was never filled"
    message = str(failure.value)
    assert "full" in message.lower(), message
    filled[0].unlink()
    assert _integrity(db) == "ok"
    with Store.open(db) as store:
        (run,) = store.runs()
        stored = {
            evaluation.id
            for row in store.history(run.run_id)
            for evaluation in store.evaluations(row.program_id)
        }
        assert set(committed) <= stored  # every evaluation whose commit returned is there
        assert len(committed) >= 3
        done = len(_iteration_statuses(store, run.run_id))
        resumed = config.with_budgets(iterations=done + 1)
        outcome = optimize(store, resumed, MutationProposer(seed=7), run_id=run.run_id)
    assert outcome.reason == "iterations"
    record(
        fault="disk under the database full (8 MB tmpfs filled)",
        outcome=(
            'optimize stops with a one-line StorageError ("database or disk is full"); the '
            "database passes integrity_check and holds every evaluation committed before; "
            "once space is freed, resuming finishes the run"
        ),
    )


# -- the database locked by another writer -------------------------------------------------------


class Locker:
    """Holds the database's write lock from another connection for `seconds`."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.path, self.seconds = path, seconds
        self.held = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            connection.execute("BEGIN IMMEDIATE")
            self.held.set()
            time.sleep(self.seconds)
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    def start(self) -> None:
        self.thread.start()
        assert self.held.wait(30)


@pytest.mark.bwrap
@pytest.mark.parametrize("hold_seconds", [0.2, 1.5], ids=["shorter", "longer"])
def test_fault_database_locked_by_another_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hold_seconds: float, bwrap_backend, record
) -> None:
    import storage.db

    monkeypatch.setattr(storage.db, "BUSY_TIMEOUT_MS", 500)  # 15 s in production
    db = tmp_path / "run.db"
    lockers: list[Locker] = []

    def lock() -> None:
        locker = Locker(db, hold_seconds)
        locker.start()
        lockers.append(locker)

    proposer = Hooked(MutationProposer(seed=8), {1: lock})
    config = RunConfig(**SHORT, iterations=2, sandbox="bwrap")
    with Store.open(db) as store:
        if hold_seconds < 0.5:
            outcome = optimize(store, config, proposer)
            assert outcome.reason == "iterations"
            assert len(_iteration_statuses(store, outcome.run_id)) == 2
        else:
            with pytest.raises(StorageError, match="locked by another process"):
                optimize(store, config, proposer)
            (run,) = store.runs()
            before = _evaluation_count(store, run.run_id)
            # Marked failed if the lock was gone by the time the loop said so (it tries once),
            # else still `running`: which one depends on the machine's speed, not the code.
            assert store.get_run(run.run_id).status in ("failed", "running")
    for locker in lockers:
        locker.thread.join(10)
    assert _integrity(db) == "ok"
    if hold_seconds < 0.5:
        record(
            fault="database write-locked by another connection, shorter than the busy timeout",
            outcome="the loop's next write waits for the lock and the run goes on and finishes",
        )
        return
    assert before >= 2  # the seed program's two evaluations
    with Store.open(db) as store:
        assert _evaluation_count(store, run.run_id) == before  # nothing committed was lost
        outcome = optimize(store, config, MutationProposer(seed=8), run_id=run.run_id)
        assert outcome.reason == "iterations"
        kinds = [event.kind for event in store.events(outcome.run_id)]
    assert "run_resumed" in kinds and kinds[-1] == "run_finished"
    record(
        fault="database write-locked by another connection, longer than the busy timeout",
        outcome=(
            'optimize stops with a one-line StorageError ("... is locked by another process: '
            'database is locked") after the busy timeout; nothing committed is lost; '
            "resuming finishes the run"
        ),
    )


# -- the LLM endpoint down for minutes -----------------------------------------------------------


def test_fault_llm_endpoint_down_for_minutes(tmp_path: Path, bwrap_backend, record) -> None:
    """Refused for the first 2 simulated minutes, HTTP 500 for the next 2, then answers."""
    clock = [0.0]
    refused_until, failing_until = 120.0, 240.0
    fence = "```python\n{}\n```"

    def answer(_body):
        if clock[0] < failing_until:
            return HttpStatus(500, message="the model server is restarting")
        return Answer(fence.format(DEFAULT_PROGRAM))

    with ScriptedLLM(when_empty=answer) as llm:
        host, port = llm.base_url.split("//")[1].split("/")[0].split(":")
        with Switch(listen=("127.0.0.1", 0), target=(host, int(port))) as switch:
            switch.down()  # nothing listens: connections are refused

            def sleep(seconds: float) -> None:
                clock[0] += seconds
                if clock[0] >= refused_until and not switch.is_up:
                    switch.up()

            base_url = f"http://127.0.0.1:{switch.address[1]}/v1"
            proposer = LlmProposer(
                "scripted-model",
                base_url=base_url,
                api_key="test",
                timeout_seconds=5.0,
                max_retries=4,
                backoff_base_seconds=30.0,
                backoff_cap_seconds=120.0,
                sleep=sleep,
                rng=random.Random(0),
            )
            config = RunConfig(
                **SHORT, iterations=5, sandbox="bwrap", proposer="llm", model="scripted-model"
            )
            started = time.monotonic()
            with Store.open(tmp_path / "run.db") as store:
                outcome = optimize(store, config, proposer)
                calls = store.llm_calls(outcome.run_id)
                statuses = _iteration_statuses(store, outcome.run_id)
            elapsed = time.monotonic() - started
    refused = [c for c in calls if c.error and "connection error" in c.error]
    failed_500 = [c for c in calls if c.error and "HTTP 500" in c.error]
    answered = [c for c in calls if c.error is None]
    assert outcome.reason == "iterations" and len(statuses) == 5
    assert clock[0] >= failing_until  # minutes of outage, simulated
    assert refused and failed_500 and answered
    assert len(calls) == len(refused) + len(failed_500) + len(answered)  # every call recorded
    assert len(failed_500) + len(answered) == len(llm.requests)  # what reached the server
    assert statuses[0] == "no_program" and statuses[-1] == "ok"
    assert elapsed < 120  # no real waiting
    record(
        fault="LLM endpoint down for minutes (refused, then HTTP 500), backoff simulated",
        outcome=(
            "every failed call is recorded as an llm_call with its error; iterations without a "
            "program are recorded no_program; the run goes on and, once the endpoint answers, "
            "evaluates its programs and finishes"
        ),
    )
    assert leftover_processes() == []
