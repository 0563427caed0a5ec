"""`evocade backup DB OUT`: a consistent copy of a SQLite database, safe while a run writes.

The work is `storage.backup.backup_sqlite` (SQLite's online backup API); this module parses
the arguments and prints one line. A PostgreSQL URL gets a one-line refusal that says which
`pg_dump` command does the same job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.db_option import storage_errors
from engine.errors import UserError
from engine.textsafe import safe_line


def backup_command(
    db: Annotated[str, typer.Argument(help="The database: a SQLite file (or its sqlite:/// URL).")],
    out: Annotated[Path, typer.Argument(help="Where to write the copy (a new file).")],
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Copy a database consistently, even while `evocade run` is writing to it.

    The copy is one self-contained SQLite file (no -wal beside it), checked before it replaces
    OUT; an interrupted backup leaves OUT untouched. Nothing is written to DB.

    Example: evocade backup evocade.db backups/evocade-$(date +%F).db
    """
    from storage.backup import backup_sqlite, postgres_hint
    from storage.db import resolve

    with storage_errors():
        location = resolve(db)
        if location.path is None:
            if location.is_sqlite:
                raise UserError("an in-memory database has no file to back up")
            raise UserError(postgres_hint(location.url, str(out)))
        report = backup_sqlite(location.path, out, overwrite=force)
    megabytes = report.bytes / 1e6
    print(
        f"backed up {safe_line(str(report.source))} (schema {report.revision or '-'}) to "
        f"{safe_line(str(report.target))}: {megabytes:.1f} MB in {report.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_command)
