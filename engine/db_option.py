"""The `--db` option every command shares, and opening a store for the CLI.

`--db` takes a SQLite file path or a database URL (`sqlite:///PATH`,
`postgresql://USER:PASSWORD@HOST/NAME`); it defaults to `evocade.db` in the working directory
and can be set once with the `EVOCADE_DB` environment variable. Storage errors become
`UserError`s here, so a command prints one line and exits 2 instead of a traceback.

A 0-byte file given as `--db` is refused by every command, with the reason: SQLite would take
it for an empty database, but evocade never writes into a file it did not create (it may be a
placeholder, a lock file or a mistyped path to something else). Delete it to start afresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from engine.errors import UserError
from storage import StorageError, Store

DEFAULT_DB = "evocade.db"
DB_ENV_VAR = "EVOCADE_DB"

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar=DB_ENV_VAR,
        metavar="PATH_OR_URL",
        help="Database: a SQLite file, sqlite:///PATH or postgresql://USER@HOST/NAME "
        "(env EVOCADE_DB).",
    ),
]
"""Use as `db: DbOption = DEFAULT_DB` in a command's signature."""


def one_line(error: BaseException) -> str:
    """An error message squeezed onto one line (the CLI's contract for errors)."""
    parts = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(parts) or type(error).__name__


@contextmanager
def storage_errors() -> Iterator[None]:
    """Re-raise any `StorageError` as a `UserError` with the same (one-line) message."""
    try:
        yield
    except StorageError as error:
        raise UserError(one_line(error)) from error


def refuse_unusable_location(db: str) -> None:
    """The checks every command makes on `--db` before storage sees it (UserError if bad)."""
    from storage.db import resolve

    if not db.strip():
        raise UserError(
            "--db is empty: give a SQLite file path (e.g. evocade.db) or a database URL "
            "(sqlite:///PATH, postgresql://USER:PASSWORD@HOST/NAME)"
        )
    with storage_errors():
        location = resolve(db)
    path = location.path
    if path is not None and _is_empty_file(path):
        raise UserError(
            f"{path} is an empty file, not an evocade database: evocade does not write into "
            "files it did not create; delete it to start a new database there, or choose "
            "another --db"
        )


def _is_empty_file(path: Path) -> bool:
    """A 0-byte regular file that no SQLite write-ahead log belongs to."""
    try:
        if not path.is_file() or path.stat().st_size != 0:
            return False
        wal = path.with_name(path.name + "-wal")
        return not (wal.is_file() and wal.stat().st_size > 0)
    except OSError:
        return False  # storage says what is wrong with it


def open_store(db: str, *, create: bool = False) -> Store:
    """Open the store at `db`, or raise `UserError`.

    Commands that only read or revert pass `create=False`: a mistyped `--db` then says "no
    database at ..." instead of leaving an empty database behind. Commands that start runs pass
    `create=True`. The caller closes the store (or use `opened_store`).
    """
    refuse_unusable_location(db)
    with storage_errors():
        return Store.open(db, create=create)


@contextmanager
def opened_store(db: str, *, create: bool = False) -> Iterator[Store]:
    """`open_store` as a context manager that also converts errors raised inside it."""
    store = open_store(db, create=create)
    try:
        with storage_errors():
            yield store
    finally:
        store.close()
