"""The run lease: one process drives a run. The rules (who may take it, the messages) live in
`storage.leases`; this module reads and writes the `run_lease` row under a lock."""

from __future__ import annotations

import os
import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.errors import InvalidInputError, NotFoundError
from storage.leases import (
    Lease,
    LeaseHeldError,
    LeaseLostError,
    held_message,
    lost_message,
    may_acquire,
)
from storage.models import Run, RunLease, utcnow
from storage.store_base import StoreBase

_HOLDER = re.compile(r"[\w.:@-]{1,64}")


class LeasesMixin(StoreBase):
    """The `Store` calls about run leases."""

    def acquire_lease(
        self,
        run_id: str,
        holder: str,
        ttl_seconds: float,
        *,
        pid: int | None = None,
    ) -> Lease:
        """Take the run's lease for `holder` (this host, `pid` or this process's), valid for
        `ttl_seconds` unless renewed; raise `LeaseHeldError` (one line, naming the holder) when
        another live process holds it.

        Race-free: on SQLite the write transaction holds the database's write lock; on
        PostgreSQL the run's row and the lease's row are locked first, so two acquirers take
        turns and the second sees what the first committed.
        """
        holder = self._check_holder(holder)
        ttl = self._check_ttl(ttl_seconds)
        with self._write() as session:
            run = session.scalars(
                select(Run).where(Run.id == run_id).with_for_update(key_share=True)
            ).first()
            if run is None:
                raise NotFoundError(f"no run matches {run_id!r}")
            row = self._lease_row(session, run.id)
            now = utcnow()
            current = _lease(row) if row is not None else None
            if not may_acquire(current, holder, now, self.host, self.pid_alive):
                assert current is not None
                raise LeaseHeldError(held_message(current, now))
            if row is None:
                row = RunLease(run_id=run.id)
                session.add(row)
            if current is None or current.holder != holder or current.released_at is not None:
                row.acquired_at = now
            row.holder, row.host, row.pid = holder, self.host, pid or os.getpid()
            row.heartbeat_at, row.expires_at, row.released_at = now, now + ttl, None
            session.flush()
            return _lease(row)

    def renew_lease(self, run_id: str, holder: str, ttl_seconds: float) -> Lease:
        """Heartbeat: extend `holder`'s lease to `ttl_seconds` from now. Raises `LeaseLostError`
        when the lease was released or taken over meanwhile: the caller must stop driving the
        run. (An expired lease nobody took over is simply renewed.)"""
        holder = self._check_holder(holder)
        ttl = self._check_ttl(ttl_seconds)
        with self._write() as session:
            row = self._lease_row(session, run_id)
            if row is None or row.holder != holder or row.released_at is not None:
                raise LeaseLostError(lost_message(run_id, _lease(row) if row else None))
            now = utcnow()
            row.heartbeat_at, row.expires_at = now, now + ttl
            session.flush()
            return _lease(row)

    def release_lease(self, run_id: str, holder: str) -> bool:
        """Give the lease up (a clean stop); False when `holder` no longer held it."""
        with self._write() as session:
            row = self._lease_row(session, run_id)
            if row is None or row.holder != holder or row.released_at is not None:
                return False
            row.released_at = utcnow()
            return True

    def lease(self, run_id: str) -> Lease | None:
        """The run's lease as stored (live or not: see `Lease.live`, `Lease.holder_gone`)."""
        with self._read() as session:
            row = session.get(RunLease, run_id)
            return _lease(row) if row is not None else None

    def leases(self) -> dict[str, Lease]:
        """Every run's lease, by run id (for listings: one query, not one per run)."""
        with self._read() as session:
            return {row.run_id: _lease(row) for row in session.scalars(select(RunLease))}

    @staticmethod
    def _lease_row(session: Session, run_id: str) -> RunLease | None:
        return session.scalars(
            select(RunLease)
            .where(RunLease.run_id == run_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    @staticmethod
    def _check_holder(holder: str) -> str:
        if not isinstance(holder, str) or not _HOLDER.fullmatch(holder):
            raise InvalidInputError(
                f"a lease holder is 1-64 letters, digits or . : @ _ -, not {holder!r}"
            )
        return holder

    @staticmethod
    def _check_ttl(ttl_seconds: float) -> timedelta:
        if not ttl_seconds > 0:
            raise InvalidInputError(f"a lease needs a positive ttl, got {ttl_seconds} s")
        return timedelta(seconds=ttl_seconds)


def _lease(row: RunLease) -> Lease:
    return Lease(
        run_id=row.run_id,
        holder=row.holder,
        host=row.host,
        pid=row.pid,
        acquired_at=row.acquired_at,
        heartbeat_at=row.heartbeat_at,
        expires_at=row.expires_at,
        released_at=row.released_at,
    )
