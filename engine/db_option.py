"""The `--db` option every command shares, and opening a store for the CLI.

`--db` takes a SQLite file path or any SQLAlchemy URL; it defaults to `evocade.db` in the working
directory and can be set once with the `EVOCADE_DB` environment variable. Storage errors become
`UserError`s here, so a command prints one line and exits 2 instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
        help="Database: a SQLite file or a SQLAlchemy URL (env EVOCADE_DB).",
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


def open_store(db: str, *, create: bool = False) -> Store:
    """Open the store at `db`, or raise `UserError`.

    Commands that only read or revert pass `create=False`: a mistyped `--db` then says "no
    database at ..." instead of leaving an empty database behind. Commands that start runs pass
    `create=True`. The caller closes the store (or use `opened_store`).
    """
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
