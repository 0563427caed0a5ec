"""Every hostile program in programs/, on every sandbox backend, with the static checker off and
on: each must end with the status its header names (DESIGN.md §3), and the host must be as it
was: the sentinel file and the database unread and unchanged, no process or container left, no
connection or datagram heard on 127.0.0.1, the test's secret nowhere in the result, nothing that
says ESCAPED, and every reported score equal to what the emulator gives for the reported
actions. The header format is in catalog.py.

Speed: a sandbox spends ~1 s starting (OCAtari's imports), so the matrix would take minutes
one evaluation at a time. Tests run in the order program, checker mode, backend, and the bwrap
test starts its docker twin's evaluation on the other CPU before it plays its own; it waits for
that evaluation before its checks, so when the docker test runs (next) nothing else is in
flight and its checks (containers, processes, files) see only its own evaluation. A docker test
run on its own (`-m docker`, `-k docker`) evaluates itself.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.evaluate import evaluate
from sandbox.results import EvaluationResult, Status, worst
from sandbox.settings import EnvSettings, Limits
from tests.adversarial.catalog import FIND_HARNESS, MODES, Program, evidence, load_programs
from tests.adversarial.conftest import (
    REPO,
    SECRET_NAME,
    HostFiles,
    docker_socket_path,
    leftover_processes,
    make_host_files,
    our_containers,
)

PROGRAMS = load_programs()
LIMITS = Limits(act_seconds=1.0, episode_cpu_seconds=5, episode_wall_seconds=30)
ERROR_CAP = 8100  # EpisodeResult trims error and output to 8000 characters plus a marker
BACKENDS = [
    pytest.param("bwrap", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
]


@dataclass
class Started:
    """An evaluation under way (or done), with what the test needs to check it."""

    host: HostFiles
    heard_before: int
    results: Future[list[EvaluationResult]]


_twins: dict[str, Started] = {}  # docker test node id -> its evaluation, started by the bwrap test
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docker-twin")


class _OnCpu:
    """A backend whose sandboxes are pinned to `cpu` (a pool would start at CPU 0)."""

    def __init__(self, inner: Any, cpu: int) -> None:
        self.inner, self.cpu, self.name = inner, cpu, inner.name

    def start_sandbox(self, cpu: int | None, prepare: Any) -> Any:
        return self.inner.start_sandbox(self.cpu, prepare)

    def close(self) -> None:
        pass


def _placeholders(host: HostFiles, listeners) -> dict[str, str]:
    return {
        "HOST_DIR": str(host.directory),
        "SENTINEL": str(host.sentinel),
        "DB_PATH": str(host.database),
        "REPO": str(REPO),
        "TCP_PORT": str(listeners.tcp_port),
        "UDP_PORT": str(listeners.udp_port),
        "SECRET_NAME": SECRET_NAME,
        "DOCKER_SOCKET": docker_socket_path(),
        "FIND_HARNESS": FIND_HARNESS,
    }


def _play(program: Program, source: str, mode: str, backend: Any) -> list[EvaluationResult]:
    return [
        evaluate(
            source,
            "Pong",
            seeds=list(range(program.seeds)),
            env=EnvSettings.deterministic(max_steps=program.max_steps),
            limits=LIMITS.model_copy(update={"act_seconds": program.act_seconds}),
            backend=backend,
            check=mode == "on",
            workers=1,
        )
        for _ in range(program.runs)
    ]


def _start(program: Program, mode: str, backend: Any, listeners, template, secret, *, now: bool):
    host = make_host_files(template, secret)
    source = program.fill(_placeholders(host, listeners))
    heard_before = len(listeners.heard)
    future: Future[list[EvaluationResult]]
    if now:
        future = Future()
        try:
            future.set_result(_play(program, source, mode, backend))
        except Exception as error:
            future.set_exception(error)
    else:
        future = _pool.submit(_play, program, source, mode, backend)
    return Started(host, heard_before, future)


def _docker_twin(node_id: str) -> str:
    """The node id of the same test on docker (the backend is the last parameter)."""
    return node_id.removesuffix("-bwrap]") + "-docker]" if node_id.endswith("-bwrap]") else ""


def _start_docker_twin(request: pytest.FixtureRequest, program: Program, mode: str) -> None:
    """From the bwrap test: start the docker test's evaluation, if that test will run."""
    twin = _docker_twin(request.node.nodeid)
    if twin not in {item.nodeid for item in request.session.items}:
        return
    state = request.getfixturevalue("docker_state")
    cpus = sorted(os.sched_getaffinity(0))
    if state.backend is None or len(cpus) < 2:
        return
    _twins[twin] = _start(
        program,
        mode,
        _OnCpu(state.backend, cpus[1]),
        request.getfixturevalue("listeners"),
        request.getfixturevalue("database_template"),
        request.getfixturevalue("secret"),
        now=False,
    )


@pytest.fixture(scope="module", autouse=True)
def _no_twin_left_behind():
    """A twin whose docker test never ran (a stop on the first failure): finish and clean up."""
    yield
    while _twins:
        _, started = _twins.popitem()
        started.results.exception()
        started.host.remove()


def _evidence(result: EvaluationResult) -> str:
    if result.status == Status.REJECTED:
        assert result.check is not None
        return evidence("rejected", None, [d.rule for d in result.check.diagnostics])
    found: list[str] = []
    for episode in result.episodes:
        text = evidence(str(episode.status), episode.error)
        if text not in found:
            found.append(text)
    return " / ".join(text for text in found if text)


def _check_scores(program: Program, result: EvaluationResult, replayer) -> None:
    """The reported return is what the emulator gives for the reported actions, and a NOOP
    program played NOOP all the way."""
    for episode in result.episodes:
        if episode.trace is None:  # the worker never reported it: nothing was played
            assert episode.length == 0 and episode.episode_return == 0.0
            continue
        actions = episode.trace.actions
        assert len(actions) == episode.length <= program.max_steps
        replayed = replayer.episode_return(
            result.game, result.env.model_dump(), episode.seed, actions
        )
        assert episode.episode_return == replayed, (
            f"seed {episode.seed}: reported {episode.episode_return}, emulator {replayed}"
        )
        if program.score == "noop" and episode.status == Status.OK:
            assert actions == "0" * program.max_steps


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("mode", MODES, ids=[f"checker-{mode}" for mode in MODES])
@pytest.mark.parametrize("program", PROGRAMS, ids=[program.name for program in PROGRAMS])
def test_hostile_program_is_contained(
    request: pytest.FixtureRequest,
    program: Program,
    mode: str,
    backend_name: str,
    sandbox_backend,
    listeners,
    database_template,
    secret: str,
    replayer,
    record,
) -> None:
    started = _twins.pop(request.node.nodeid, None)
    if started is None:
        if backend_name == "bwrap":
            _start_docker_twin(request, program, mode)
        started = _start(
            program, mode, sandbox_backend, listeners, database_template, secret, now=True
        )
    twin = _twins.get(_docker_twin(request.node.nodeid))
    if twin is not None:
        twin.results.exception()  # wait: nothing of the twin may run during our checks
    try:
        _check(program, mode, backend_name, started, listeners, secret, replayer, record)
    finally:
        started.host.remove()


def _check(program, mode, backend_name, started, listeners, secret, replayer, record) -> None:
    results = started.results.result()
    first = results[0]
    observed = [str(e.status) for e in first.episodes] or [str(first.status)]
    record(program.name, backend_name, mode, observed, _evidence(first))
    expected = list(program.expected(backend_name, mode))

    for result in results:
        statuses = [str(e.status) for e in result.episodes] or [str(result.status)]
        details = [f"{e.status}: {e.error}" for e in result.episodes]
        assert statuses == expected, details or result.check
        assert result.status == worst([Status(s) for s in expected])
        if mode == "on":
            assert result.check is not None
            assert result.check.ok == (program.checker == "accept"), result.check
        else:
            assert result.check is None
        for episode in result.episodes:
            assert len(episode.error or "") <= ERROR_CAP
            assert len(episode.output) <= LIMITS.output_bytes + 100
            if program.max_seconds is not None:
                assert episode.wall_seconds <= program.max_seconds, episode.wall_seconds
        _check_scores(program, result, replayer)
        dump = json.dumps(result.summary_dict(with_traces=True))
        # Valid UTF-8 end to end: a lone surrogate once broke the next LLM request.
        json.dumps(result.summary_dict(), ensure_ascii=False).encode("utf-8")
        assert secret not in dump, "the host's secret reached the result"
        assert "ESC" + "APED" not in dump, dump[:2000]

    assert started.host.problems() == []
    assert listeners.heard[started.heard_before :] == []
    assert leftover_processes() == []
    if backend_name == "docker":
        deadline = time.monotonic() + 5
        while (left := our_containers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == []
