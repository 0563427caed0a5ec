"""One process per run: the rules of the run lease, as pure functions (the SQL is in `Store`).

Two `evocade run --resume` at once would both drive the run: duplicated iteration numbers,
evaluations computed twice, a false crash recovery. So a process takes the run's lease first
(`Store.acquire_lease`) and renews it with heartbeats while it works. The lease names its
holder (an id the process made), host and pid, and expires `ttl_seconds` after the last
heartbeat. Another process may take it over when:

- nobody holds it (no lease yet, or released), or the same holder asks again;
- it expired: the holder stopped heartbeating (killed, hung, its machine gone);
- it is held from this host by a pid that no longer runs (kill -9, then resume at once:
  no need to wait out the TTL).

Otherwise the second process is refused with a one-line `LeaseHeldError`. Expiry compares
timestamps written by different processes, so the hosts' clocks must agree to well within
the TTL (NTP does that; a TTL of minutes leaves ample room).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storage.errors import StorageError
from storage.models import short_id

PidAlive = Callable[[int], bool]


class LeaseHeldError(StorageError):
    """Another live process holds the run's lease; the message names it."""


class LeaseLostError(StorageError):
    """Renewing a lease this process no longer holds (it expired and was taken over)."""


@dataclass(frozen=True)
class Lease:
    run_id: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    released_at: datetime | None

    def live(self, now: datetime) -> bool:
        """Held: not released, and the last heartbeat is younger than the TTL."""
        return self.released_at is None and now < self.expires_at

    def holder_gone(self, now: datetime, host: str, pid_alive: PidAlive) -> bool:
        """Nobody is driving the run under this lease any more (as far as `host` can tell)."""
        if not self.live(now):
            return True
        return self.host == host and not pid_alive(self.pid)


def may_acquire(
    lease: Lease | None, holder: str, now: datetime, host: str, pid_alive: PidAlive
) -> bool:
    """Whether `holder` (on `host`) may take the run's lease now (module docstring)."""
    return lease is None or lease.holder == holder or lease.holder_gone(now, host, pid_alive)


def shown_status(status: str, lease: Lease | None, now: datetime, host: str) -> str:
    """A run's status for listings: `running` becomes `interrupted` once its lease's holder is
    gone (killed without stopping the run). Runs without a lease (started before leases
    existed, or by a loop that takes none) keep their stored status."""
    if status == "running" and lease is not None and lease.holder_gone(now, host, pid_alive):
        return "interrupted"
    return status


def held_message(lease: Lease, now: datetime) -> str:
    age = max((now - lease.heartbeat_at).total_seconds(), 0.0)
    return (
        f"run {short_id(lease.run_id)} is being driven by another process (pid {lease.pid} on "
        f"{lease.host}, holder {short_id(lease.holder)}, last heartbeat {age:.0f} s ago); stop "
        f"it first, or wait until its lease expires at {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC"
    )


def lost_message(run_id: str, lease: Lease | None) -> str:
    if lease is None:
        return f"run {short_id(run_id)} has no lease to renew: this process must stop driving it"
    return (
        f"run {short_id(run_id)} was taken over by pid {lease.pid} on {lease.host} (holder "
        f"{short_id(lease.holder)}): this process must stop driving it"
    )


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a zombie does not count)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
