"""The audit log: append an event (of a run, or of the database as a whole) and read it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from storage.errors import InvalidInputError
from storage.models import Event, EventKind
from storage.store_base import StoreBase

_EVENT_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")


class EventsMixin(StoreBase):
    """The `Store` calls about events."""

    def add_event(
        self,
        run_id: str | None,
        kind: EventKind,
        message: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        """Append to the audit log (`kind` one of `EventKind`; any snake_case kind is stored)."""
        if not _EVENT_KIND.fullmatch(kind):
            raise InvalidInputError(f"event kind {kind!r} must be snake_case, at most 32 chars")
        with self._write() as session:
            if run_id is not None:
                self._run(session, run_id)
            event = Event(
                run_id=run_id,
                kind=kind,
                message=message,
                data=dict(data) if data is not None else None,
            )
            session.add(event)
        return event

    def events(self, run_id: str | None = None) -> list[Event]:
        """The audit log, oldest first; of one run, or all of it."""
        with self._read() as session:
            query = select(Event).order_by(Event.id)
            if run_id is not None:
                query = query.where(Event.run_id == run_id)
            return list(session.scalars(query))
