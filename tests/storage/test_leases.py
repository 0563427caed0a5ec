"""The run lease: one process drives a run; taken over only when its holder is gone (#12)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import Store
from storage.leases import (
    Lease,
    LeaseHeldError,
    LeaseLostError,
    may_acquire,
    pid_alive,
    shown_status,
)
from storage.models import utcnow
from tests.storage.factories import PONG_ENV

ROUNDS = 15
HOUR = 3600.0
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _lease(**changes: object) -> Lease:
    values: dict[str, object] = {
        "run_id": "r" * 32,
        "holder": "a" * 32,
        "host": "here",
        "pid": 100,
        "acquired_at": NOW - timedelta(minutes=5),
        "heartbeat_at": NOW - timedelta(seconds=10),
        "expires_at": NOW + timedelta(seconds=50),
        "released_at": None,
    }
    values.update(changes)
    return Lease(**values)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    return pid == 100


def _dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(process.stdout)


def _wait_until(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


# -- the rules, without a database ----------------------------------------------------------


def test_lease_rules_live_holder_keeps_it() -> None:
    assert not may_acquire(_lease(), "b" * 32, NOW, "here", _alive)
    assert not may_acquire(_lease(host="elsewhere", pid=999), "b" * 32, NOW, "here", _alive)


def test_lease_rules_free_own_expired_released_or_dead_pid() -> None:
    assert may_acquire(None, "b" * 32, NOW, "here", _alive)
    assert may_acquire(_lease(), "a" * 32, NOW, "here", _alive)  # the same holder again
    assert may_acquire(_lease(expires_at=NOW), "b" * 32, NOW, "elsewhere", _alive)
    assert may_acquire(_lease(released_at=NOW), "b" * 32, NOW, "elsewhere", _alive)
    assert may_acquire(_lease(pid=999), "b" * 32, NOW, "here", _alive)  # killed on this host
    # on another host the pid means nothing: wait for the heartbeat to stop
    assert not may_acquire(_lease(pid=999), "b" * 32, NOW, "there", _alive)


def test_lease_rules_shown_status() -> None:
    assert shown_status("running", None, NOW, "here") == "running"  # no lease: as stored
    assert shown_status("running", _lease(expires_at=NOW), NOW, "elsewhere") == "interrupted"
    assert shown_status("stopped", _lease(expires_at=NOW), NOW, "elsewhere") == "stopped"


def test_lease_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())
    assert not pid_alive(0)


# -- in the database ------------------------------------------------------------------------


def test_lease_acquire_renew_release(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    assert store.lease(run.id) is None
    lease = store.acquire_lease(run.id, "holder-1", HOUR)
    assert (lease.holder, lease.host, lease.pid) == ("holder-1", store.host, os.getpid())
    assert lease.live(utcnow()) and lease.expires_at > lease.heartbeat_at
    renewed = store.renew_lease(run.id, "holder-1", HOUR)
    assert renewed.heartbeat_at > lease.heartbeat_at and renewed.acquired_at == lease.acquired_at
    assert store.lease(run.id) == renewed
    assert store.release_lease(run.id, "holder-1") is True
    assert store.release_lease(run.id, "holder-1") is False
    released = store.lease(run.id)
    assert released is not None and not released.live(utcnow())
    with pytest.raises(LeaseLostError):
        store.renew_lease(run.id, "holder-1", HOUR)
    assert store.acquire_lease(run.id, "holder-2", HOUR).holder == "holder-2"
    assert set(store.leases()) == {run.id}


def test_lease_second_holder_is_refused_in_one_line(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    store.acquire_lease(run.id, "holder-1", HOUR)  # this process: alive
    with pytest.raises(LeaseHeldError) as refused:
        store.acquire_lease(run.id, "holder-2", HOUR)
    message = str(refused.value)
    assert "\n" not in message
    assert f"pid {os.getpid()} on {store.host}" in message and run.id[:8] in message
    assert store.lease(run.id).holder == "holder-1"  # type: ignore[union-attr]


def test_lease_taken_over_at_once_from_a_killed_process_on_this_host(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    store.acquire_lease(run.id, "killed", HOUR, pid=_dead_pid())
    lease = store.acquire_lease(run.id, "resumer", HOUR)
    assert (lease.holder, lease.pid) == ("resumer", os.getpid())
    with pytest.raises(LeaseLostError, match="taken over") as lost:
        store.renew_lease(run.id, "killed", HOUR)
    assert "\n" not in str(lost.value)
    assert store.release_lease(run.id, "killed") is False


def test_lease_taken_over_from_another_host_only_after_its_heartbeat_stopped(
    database: str | Path,
) -> None:
    with Store.open(database) as remote, Store.open(database) as local:
        remote.host = "other-machine"
        run = remote.create_run("Pong", PONG_ENV)
        remote.acquire_lease(run.id, "remote", HOUR, pid=_dead_pid())
        with pytest.raises(LeaseHeldError, match="other-machine"):
            local.acquire_lease(run.id, "local", HOUR)  # its pid means nothing here
        remote.acquire_lease(run.id, "remote", 0.05)  # heartbeat with a tiny ttl, then silence
        _wait_until(lambda: not local.lease(run.id).live(utcnow()), "the lease to expire")  # type: ignore[union-attr]
        assert local.acquire_lease(run.id, "local", HOUR).holder == "local"


def test_lease_bad_arguments(store: Store) -> None:
    run = store.create_run("Pong", PONG_ENV)
    with pytest.raises(Exception, match="positive ttl"):
        store.acquire_lease(run.id, "h", 0)
    with pytest.raises(Exception, match="lease holder"):
        store.acquire_lease(run.id, "bad holder\n", HOUR)
    with pytest.raises(Exception, match="no run matches"):
        store.acquire_lease("0" * 32, "h", HOUR)


def _race(database: str | Path, run_ids: list[str], prepare=None) -> list[list[str]]:
    """Two stores (two connections, as two processes would have) acquire each run at the same
    moment; returns the winners of each round."""
    stores = [Store.open(database) for _ in range(2)]
    barrier = threading.Barrier(2)
    winners: list[list[str]] = [[] for _ in run_ids]
    failures: list[BaseException] = []

    def contend(store: Store, holder: str) -> None:
        try:
            for index, run_id in enumerate(run_ids):
                barrier.wait(timeout=60)
                try:
                    store.acquire_lease(run_id, holder, HOUR)
                except LeaseHeldError:
                    continue
                winners[index].append(holder)
        except BaseException as error:
            failures.append(error)
            barrier.abort()

    threads = [
        threading.Thread(target=contend, args=(store, f"racer-{n}"))
        for n, store in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for store in stores:
        store.close()
    assert failures == []
    return winners


def test_lease_two_acquirers_racing_for_a_free_run_one_wins(database: str | Path) -> None:
    with Store.open(database) as setup:
        run_ids = [setup.create_run("Pong", PONG_ENV).id for _ in range(ROUNDS)]
    winners = _race(database, run_ids)
    assert all(len(round_winners) == 1 for round_winners in winners), winners
    with Store.open(database) as store:
        assert [store.lease(r).holder for r in run_ids] == [w[0] for w in winners]  # type: ignore[union-attr]


def test_lease_two_acquirers_racing_to_take_over_an_expired_lease_one_wins(
    database: str | Path,
) -> None:
    with Store.open(database) as setup:
        setup.host = "gone-machine"
        run_ids = [setup.create_run("Pong", PONG_ENV).id for _ in range(ROUNDS)]
        for run_id in run_ids:
            setup.acquire_lease(run_id, "gone", 0.05)
        _wait_until(
            lambda: all(not setup.lease(r).live(utcnow()) for r in run_ids),  # type: ignore[union-attr]
            "the leases to expire",
        )
    winners = _race(database, run_ids)
    assert all(len(round_winners) == 1 for round_winners in winners), winners
