"""Memory and pids limits for one sandbox, through cgroup v1 or v2, whichever the host has.

rlimits bound the policy process alone; the cgroup bounds everything in the sandbox together
(harness, policy, anything they manage to start) and tells us afterwards whether the kernel's
OOM killer had to step in, which is how a `memory` status is told apart from a crash.
"""

from __future__ import annotations

import contextlib
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


class SandboxCgroup:
    """One cgroup (one per controller on v1) holding a sandbox's processes."""

    def __init__(self, memory_mb: int, pids: int) -> None:
        self.memory_bytes = memory_mb * 1024 * 1024
        self.pids = pids
        self.name = f"{GROUP_PREFIX}/{uuid.uuid4().hex[:12]}"
        self.v1 = (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists()
        if self.v1:
            self.dirs = [CGROUP_ROOT / "memory" / self.name, CGROUP_ROOT / "pids" / self.name]
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
        memory_dir, pids_dir = self.dirs
        memory_dir.mkdir(parents=True, exist_ok=True)
        pids_dir.mkdir(parents=True, exist_ok=True)
        (memory_dir / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
        swap = memory_dir / "memory.memsw.limit_in_bytes"
        if swap.exists():  # memory + swap = memory: no swapping out of the limit
            swap.write_text(str(self.memory_bytes))
        (pids_dir / "pids.max").write_text(str(self.pids))

    def _create_v2(self) -> None:
        parent = CGROUP_ROOT / GROUP_PREFIX
        enabled = (CGROUP_ROOT / "cgroup.subtree_control").read_text().split()
        missing = [c for c in ("memory", "pids") if c not in enabled]
        if missing:
            (CGROUP_ROOT / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
        group = self.dirs[0]
        group.mkdir()
        (group / "memory.max").write_text(str(self.memory_bytes))
        swap = group / "memory.swap.max"
        if swap.exists():
            swap.write_text("0")
        (group / "pids.max").write_text(str(self.pids))

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
            for _ in range(50):
                try:
                    pids = (path / "cgroup.procs").read_text().split()
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                time.sleep(0.02)
            with contextlib.suppress(OSError):
                path.rmdir()


def reap_stale_groups(max_age_seconds: float = 3600.0) -> int:
    """Remove empty evocade cgroups left by an engine that was killed (SIGKILL skips the
    `finally` that removes them). Only old ones: a fresh, still empty group may belong to a
    worker that is about to enter it. Returns how many were removed."""
    removed = 0
    now = time.time()
    for parent in (
        CGROUP_ROOT / "memory" / GROUP_PREFIX,
        CGROUP_ROOT / "pids" / GROUP_PREFIX,
        CGROUP_ROOT / GROUP_PREFIX,
    ):
        if not parent.is_dir():
            continue
        for group in parent.iterdir():
            try:
                if group.is_dir() and now - group.stat().st_mtime > max_age_seconds:
                    group.rmdir()  # fails, harmlessly, while any process is inside
                    removed += 1
            except OSError:
                continue
    return removed


@contextlib.contextmanager
def sandbox_cgroup(memory_mb: int, pids: int) -> Iterator[SandboxCgroup]:
    group = SandboxCgroup(memory_mb, pids)
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
