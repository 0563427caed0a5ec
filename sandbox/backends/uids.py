"""A uid pair of its own for every live sandbox: one for the harness, one for the policy.

A shared uid is a shared account: the kernel counts pending signals (POSIX timers), processes
and inotify watches per uid, and lets a uid signal its own processes. With a pair per sandbox no
policy can reach its harness or another sandbox through any of them. Pairs are leased with an
flock on a file per pair, so concurrent evocade processes on one host never hand out the same
pair, and a killed process's leases free themselves (the kernel drops its locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
from dataclasses import dataclass
from pathlib import Path

from sandbox.backends.base import SandboxUnavailable

UID_BASE = 1_000_000_000  # far above any account a distribution or docker's userns-remap makes
PAIRS = 4096
LEASE_DIR = Path(os.environ.get("EVOCADE_UID_LEASES", "/run/evocade/uids"))


@dataclass
class UidLease:
    """Held while the sandbox lives; `release` only after every process of it is dead."""

    index: int
    _fd: int

    @property
    def harness_uid(self) -> int:
        return UID_BASE + 2 * self.index

    @property
    def policy_uid(self) -> int:
        return UID_BASE + 2 * self.index + 1

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


def lease_uids() -> UidLease:
    """A free pair, or SandboxUnavailable when all are taken (thousands of live sandboxes)."""
    try:
        LEASE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise SandboxUnavailable(f"cannot create {LEASE_DIR} for uid leases: {error}") from error
    start = random.randrange(PAIRS)
    for offset in range(PAIRS):
        index = (start + offset) % PAIRS
        fd = os.open(LEASE_DIR / f"{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UidLease(index, fd)
    raise SandboxUnavailable(f"all {PAIRS} sandbox uid pairs are in use")
