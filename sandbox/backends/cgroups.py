"""Memory, pids and CPU placement for one sandbox, through cgroup v1 or v2, whichever the host has.

rlimits bound the policy process alone; the cgroup bounds everything in the sandbox together
(harness, policy, anything they manage to start), pins it to its core (cpuset: a policy cannot
move itself onto another sandbox's CPU), and tells us afterwards whether the kernel's OOM killer
had to step in, which is how a `memory` status is told apart from a crash.

Every group is named after the process that made it (`evocade/<pid>-<start time>-<random>`), so
the groups of a process that was killed with SIGKILL are found and removed at the next start,
whatever their age.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.backends.base import SandboxUnavailable

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP_PREFIX = "evocade"


@dataclass
class CgroupUsage:
    oom_killed: bool
    peak_memory_mb: float | None


def process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot: with the pid, a unique identity."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _owner_tag() -> str:
    return f"{os.getpid()}-{process_start(os.getpid())}"


def _owner_gone(name: str) -> bool | None:
    """True when the group's maker is dead, False when alive, None for a foreign name."""
    parts = name.split("-")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    return process_start(int(parts[0])) != parts[1]


class SandboxCgroup:
    """One cgroup (one per controller on v1) holding a sandbox's processes."""

    def __init__(self, memory_mb: int, pids: int, cpu: int | None = None) -> None:
        self.memory_bytes = memory_mb * 1024 * 1024
        self.pids = pids
        self.cpu = cpu
        self.name = f"{GROUP_PREFIX}/{_owner_tag()}-{uuid.uuid4().hex[:12]}"
        self.v1 = (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists()
        if self.v1:
            self.dirs = [CGROUP_ROOT / "memory" / self.name, CGROUP_ROOT / "pids" / self.name]
            if cpu is not None:
                self.dirs.append(CGROUP_ROOT / "cpuset" / self.name)
        elif (CGROUP_ROOT / "cgroup.controllers").exists():
            self.dirs = [CGROUP_ROOT / self.name]
        else:
            raise SandboxUnavailable(f"no cgroup hierarchy found under {CGROUP_ROOT}")

    @property
    def procs_files(self) -> list[str]:
        return [str(path / "cgroup.procs") for path in self.dirs]

    def create(self) -> None:
        try:
            if self.v1:
                self._create_v1()
            else:
                self._create_v2()
        except OSError as error:
            self.remove()
            raise SandboxUnavailable(
                f"cannot set cgroup memory/pids limits ({error.strerror}: {error.filename}); "
                "the bwrap backend needs root or a delegated cgroup"
            ) from error

    def _create_v1(self) -> None:
        memory_dir, pids_dir = self.dirs[:2]
        memory_dir.mkdir(parents=True, exist_ok=True)
        pids_dir.mkdir(parents=True, exist_ok=True)
        (memory_dir / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
        swap = memory_dir / "memory.memsw.limit_in_bytes"
        if swap.exists():  # memory + swap = memory: no swapping out of the limit
            swap.write_text(str(self.memory_bytes))
        (pids_dir / "pids.max").write_text(str(self.pids))
        if self.cpu is not None:
            self._create_cpuset_v1(self.dirs[2])

    def _create_cpuset_v1(self, group: Path) -> None:
        """v1 cpusets start empty: the parent must get the root's CPUs and memory nodes first."""
        root, parent = CGROUP_ROOT / "cpuset", group.parent
        parent.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not (parent / name).read_text().strip():
                (parent / name).write_text((root / name).read_text().strip())
        group.mkdir()
        (group / "cpuset.cpus").write_text(str(self.cpu))
        (group / "cpuset.mems").write_text((parent / "cpuset.mems").read_text().strip())

    def _create_v2(self) -> None:
        parent = CGROUP_ROOT / GROUP_PREFIX
        enabled = (CGROUP_ROOT / "cgroup.subtree_control").read_text().split()
        controllers = ("memory", "pids", "cpuset") if self.cpu is not None else ("memory", "pids")
        missing = [c for c in controllers if c not in enabled]
        if missing:
            (CGROUP_ROOT / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))
        group = self.dirs[0]
        group.mkdir()
        (group / "memory.max").write_text(str(self.memory_bytes))
        swap = group / "memory.swap.max"
        if swap.exists():
            swap.write_text("0")
        (group / "pids.max").write_text(str(self.pids))
        if self.cpu is not None:
            (group / "cpuset.cpus").write_text(str(self.cpu))

    def usage(self) -> CgroupUsage:
        memory_dir = self.dirs[0]
        try:
            if self.v1:
                oom_text = (memory_dir / "memory.oom_control").read_text()
                peak = int((memory_dir / "memory.max_usage_in_bytes").read_text())
            else:
                oom_text = (memory_dir / "memory.events").read_text()
                peak_file = memory_dir / "memory.peak"
                peak = int(peak_file.read_text()) if peak_file.exists() else -1
        except OSError:
            return CgroupUsage(oom_killed=False, peak_memory_mb=None)
        counters = dict(line.split() for line in oom_text.splitlines() if len(line.split()) == 2)
        oom_killed = int(counters.get("oom_kill", "0")) > 0
        return CgroupUsage(oom_killed, peak / (1024 * 1024) if peak >= 0 else None)

    def remove(self) -> None:
        """Kill whatever is still inside, then remove the group(s)."""
        for path in self.dirs:
            with contextlib.suppress(OSError):
                _empty_and_remove(path)


def reap_stale_groups(max_age_seconds: float = 3600.0) -> int:
    """Remove the groups of evocade processes that are gone (SIGKILL skips the `finally` that
    removes them): any age when the maker is named and dead, after `max_age_seconds` for a
    group with a foreign name (older versions). What is still inside a dead maker's group is
    killed first. Returns how many groups were removed."""
    removed = 0
    now = time.time()
    for parent in (
        CGROUP_ROOT / "memory" / GROUP_PREFIX,
        CGROUP_ROOT / "pids" / GROUP_PREFIX,
        CGROUP_ROOT / "cpuset" / GROUP_PREFIX,
        CGROUP_ROOT / GROUP_PREFIX,
    ):
        if not parent.is_dir():
            continue
        for group in parent.iterdir():
            try:
                if not group.is_dir():
                    continue
                gone = _owner_gone(group.name)
                if gone is False or (
                    gone is None and now - group.stat().st_mtime <= max_age_seconds
                ):
                    continue
                _empty_and_remove(group)
                removed += 1
            except OSError:
                continue
    return removed


def _empty_and_remove(group: Path) -> None:
    """Kill the members, then remove the group. A killed process leaves `cgroup.procs` as soon
    as it starts exiting but keeps the group busy (EBUSY) until its exit is done, which on a
    loaded machine takes a while: keep trying for as long as its members are dying."""
    for attempt in range(500):
        _kill_members(group)
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno != errno.EBUSY or attempt == 499:
                raise
            time.sleep(0.001 if attempt < 20 else 0.02)


def _kill_members(group: Path) -> None:
    """SIGKILL everything in the group until it is empty (a forking process may add members
    while we kill; the pids limit bounds that)."""
    for attempt in range(200):
        try:
            pids = (group / "cgroup.procs").read_text().split()
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.001 if attempt < 20 else 0.02)


@contextlib.contextmanager
def sandbox_cgroup(memory_mb: int, pids: int, cpu: int | None = None) -> Iterator[SandboxCgroup]:
    group = SandboxCgroup(memory_mb, pids, cpu)
    group.create()
    try:
        yield group
    finally:
        group.remove()


def enter_argv(group: SandboxCgroup, argv: list[str]) -> list[str]:
    """Prefix a command so that it moves itself into the cgroup before it execs.

    A shell does it rather than `preexec_fn`, which is unsafe when evaluations run in threads.
    """
    script = 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; '
    script += 'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
    return ["/bin/sh", "-c", script, "sh", *group.procs_files, "--", *argv]
