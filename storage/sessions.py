"""Sessions that keep storage append-only: what may change after insert is listed in
`storage.models` (`MUTABLE_COLUMNS`, `SET_ONCE_COLUMNS`); every other update, every delete and
every bulk UPDATE/DELETE is refused before it reaches the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker
from sqlalchemy.orm.interfaces import MANYTOONE

from storage.errors import AppendOnlyError
from storage.models import MUTABLE_COLUMNS, SET_ONCE_COLUMNS


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (callers get plain snapshots)."""
    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "before_flush", _refuse_updates_and_deletes)
    event.listen(factory, "do_orm_execute", _refuse_bulk_writes)
    return factory


def _refuse_updates_and_deletes(session: Session, _flush: UOWTransaction, _objs: Any) -> None:
    for obj in session.deleted:
        raise AppendOnlyError(f"refusing to delete a {type(obj).__tablename__} row: append-only")
    for obj in session.dirty:
        _refuse_changes(obj)


def _refuse_changes(obj: Any) -> None:
    """Refuse an update of a column that is not mutable, or of a set-once one already set."""
    state = inspect(obj)
    mapper = state.mapper
    changed = {
        attr.key for attr in mapper.column_attrs if state.attrs[attr.key].history.has_changes()
    }
    changed |= {
        rel.key
        for rel in mapper.relationships
        if rel.direction is MANYTOONE and state.attrs[rel.key].history.has_changes()
    }
    refused = changed - MUTABLE_COLUMNS.get(type(obj), frozenset())
    if refused:
        names = ", ".join(sorted(refused))
        raise AppendOnlyError(
            f"refusing to update {type(obj).__tablename__}.{names}: storage is append-only"
        )
    for key in sorted(changed & SET_ONCE_COLUMNS.get(type(obj), frozenset())):
        before = state.attrs[key].history.deleted
        if any(value is not None for value in before):
            raise AppendOnlyError(
                f"refusing to change {type(obj).__tablename__}.{key} once set: it is "
                "written once, from NULL"
            )


def _refuse_bulk_writes(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if state.is_delete or (
        state.is_update
        and mapper is not None
        and (mapper.class_ not in MUTABLE_COLUMNS or mapper.class_ in SET_ONCE_COLUMNS)
    ):
        raise AppendOnlyError("refusing a bulk UPDATE/DELETE: storage is append-only")
