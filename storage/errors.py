"""The exceptions storage raises: one message line each, safe to show a user as is.

Callers (the CLI, the loop) catch `StorageError` and never need to know about SQLAlchemy or
sqlite3: every database-driver error that leaves this package has been translated into one of
these, so an error stays an error and never arrives as a traceback.
"""

from __future__ import annotations


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
