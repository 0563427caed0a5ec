"""The exceptions storage raises: one message line each, safe to show a user as is.

Callers (the CLI, the loop) catch `StorageError` and never need to know about SQLAlchemy or
sqlite3: every database-driver error that leaves this package has been translated into one of
these (by `translate_errors`), so an error stays an error and never arrives as a traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc


class StorageError(Exception):
    """Anything storage refuses to do or cannot do; the message is one line."""


class NotFoundError(StorageError):
    """No row matches an id, a prefix or a path (e.g. "no program matches 'abc'")."""


class AmbiguousIdError(StorageError):
    """A short id prefix matches several rows; the user must type more of it."""


class InvalidInputError(StorageError):
    """A value storage will not record (an unknown status, a program of another run...)."""


class CorruptDatabaseError(StorageError):
    """The file is not an evocade database, or SQLite reports it damaged.

    Raised before anything is written: a file we do not recognise is never migrated.
    """


class SchemaTooNewError(StorageError):
    """The database was migrated by a newer evocade; this one must not touch it."""


class AppendOnlyError(StorageError):
    """An attempt to update or delete a row that storage keeps forever."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_CORRUPT_MARKERS = ("malformed", "not a database", "file is encrypted", "disk i/o error")
_BUSY_MARKERS = ("database is locked", "database is busy", "database table is locked")


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Turn driver errors into one-line `StorageError`s that name the database."""
    try:
        yield
    except StorageError:
        raise
    except sa_exc.DBAPIError as error:
        message = first_line(error.orig if error.orig is not None else error)
        lowered = message.lower()
        if any(marker in lowered for marker in _CORRUPT_MARKERS):
            raise CorruptDatabaseError(f"{where} is damaged: {message}") from error
        if any(marker in lowered for marker in _BUSY_MARKERS):
            raise StorageError(f"{where} is locked by another process: {message}") from error
        if isinstance(error, sa_exc.IntegrityError):
            raise StorageError(f"{where}: integrity constraint failed: {message}") from error
        raise StorageError(f"{where}: {message}") from error
    except sqlite3.DatabaseError as error:
        raise CorruptDatabaseError(f"{where} is damaged: {first_line(error)}") from error
