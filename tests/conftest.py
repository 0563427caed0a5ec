"""Shared fixtures: which sandbox backends exist here, and policy programs used across tests.

A test that needs a backend is skipped with the reason printed when the backend is missing,
except in CI, where EVOCADE_REQUIRE_BACKENDS (e.g. "bwrap,docker") turns that skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sandbox.backends.base import Backend
    from sandbox.names import BackendName
    from sandbox.results import EpisodeResult, Trace

PROGRAMS = Path(__file__).parent / "sandbox" / "programs"


def _required_backends() -> set[str]:
    return {name.strip() for name in os.environ.get("EVOCADE_REQUIRE_BACKENDS", "").split(",")}


def backend_or_skip(name: BackendName) -> Backend:
    """The named backend, or skip (fail when CI requires it)."""
    from sandbox.backends.base import SandboxUnavailable
    from sandbox.evaluate import make_backend
    from sandbox.settings import Limits

    try:
        return make_backend(name, Limits())
    except SandboxUnavailable as error:
        if name in _required_backends():
            pytest.fail(f"backend {name} is required here but unavailable: {error}")
        pytest.skip(f"backend {name} unavailable: {error}")


@pytest.fixture(scope="session")
def bwrap_backend():
    return backend_or_skip("bwrap")


def program(name: str) -> str:
    return (PROGRAMS / name).read_text()


def trace_of(episode: EpisodeResult) -> Trace:
    """The episode's trace, which every episode that ran carries (None only when it never ran)."""
    assert episode.trace is not None, f"episode without a trace: {episode.status}"
    return episode.trace


def _is_fork_server(pid: int, parent: int) -> bool:
    """A backend's fork server or its policy zygote (a child of this process, and that child's
    child, which outlive evaluations by design: they are the warm templates, and run no
    untrusted code). Their other children do count."""
    try:
        if parent == os.getpid():
            return _runs(pid, b"sandbox.backends.forkserver")
        # The zygote's keepers and policy processes have its command line too: only the
        # fork server's own child is the zygote.
        return (
            _runs(pid, b"sandbox.runtime.policy_zygote")
            and _parent_of(parent) == os.getpid()
            and _runs(parent, b"sandbox.backends.forkserver")
        )
    except OSError:
        return False


def _runs(pid: int, module: bytes) -> bool:
    return module in Path(f"/proc/{pid}/cmdline").read_bytes()


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants() -> list[int]:
    """Processes descended from this test process (fork servers aside): none may outlive an
    evaluation. (Scanning for sandbox uids instead would see other test runs on the machine.)
    """
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    me = os.getpid()
    found = []
    for pid in parents:
        ancestor, hops = parents.get(pid), 0
        while ancestor and ancestor != me and hops < 64:
            ancestor, hops = parents.get(ancestor), hops + 1
        if ancestor == me and not _is_fork_server(pid, parents[pid]):
            found.append(pid)
    return found


RAY_ADDRESS_VARIABLE = "EVOCADE_TEST_RAY_ADDRESS"


@pytest.fixture(scope="session")
def ray_address() -> str:
    """The address of the test Ray cluster (`eval "$(scripts/ray-cluster.sh start)"`), or skip
    saying why (fail where EVOCADE_REQUIRE_BACKENDS names `ray`, as in CI)."""
    import importlib.util

    reason = ""
    address = os.environ.get(RAY_ADDRESS_VARIABLE, "").strip()
    if importlib.util.find_spec("ray") is None:
        reason = "ray is not installed (pip install -e '.[ray]')"
    elif not address:
        reason = f"{RAY_ADDRESS_VARIABLE} is not set (see scripts/ray-cluster.sh)"
    if reason:
        if "ray" in _required_backends():
            pytest.fail(f"backend ray is required here but unavailable: {reason}")
        pytest.skip(f"backend ray unavailable: {reason}")
    return address
