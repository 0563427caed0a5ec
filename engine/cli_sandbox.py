"""`evocade check` and `evocade games`, and what the sandbox commands share.

(`evocade evaluate` lives in `engine/cli_evaluate.py`.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.errors import UserError
from engine.textsafe import safe_line

if TYPE_CHECKING:
    from sandbox.results import Diagnostic


def read_policy_file(path: Path) -> str:
    """The source of a policy file, or a one-line UserError saying why it cannot be read.

    A UTF-8 byte-order mark (which some Windows editors write) is dropped: Python itself
    accepts it at the start of a module, so the checker must too.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a policy file") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None


def diagnostic_lines(where: str, diagnostics: Iterable[Diagnostic]) -> list[str]:
    """`where:line:col: rule: message`, the form editors and CI annotators jump to.

    The message can quote the program's own text, so it is made terminal-safe.
    """
    return [
        f"{safe_line(where)}:{d.line}:{d.column}: {safe_line(d.rule)}: {safe_line(d.message)}"
        for d in diagnostics
    ]


def json_text(data: object) -> str:
    """JSON for stdout: `ensure_ascii` turns every control character into a \\u escape."""
    return json.dumps(data, indent=2, ensure_ascii=True)


def check_command(
    file: Annotated[Path, typer.Argument(help="Policy source file (defines act(obs)).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Statically check a policy program; exit 0 when clean, 1 when rejected.

    Each problem is printed as FILE:LINE:COL: RULE: MESSAGE.

    Example: evocade check my_policy.py --json
    """
    from sandbox.checker import check_source

    report = check_source(read_policy_file(file))
    if as_json:
        print(json_text(report.model_dump(mode="json")))
    elif report.ok:
        print(f"{safe_line(file)}: ok")
    else:
        for line in diagnostic_lines(str(file), report.diagnostics):
            print(line)
        count = len(report.diagnostics)
        print(f"{safe_line(file)}: rejected, {count} problem{'s' if count != 1 else ''}")
    raise typer.Exit(0 if report.ok else 1)


def games_command(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show each game's full description.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the supported games, their objects and actions.

    Example: evocade games --verbose
    """
    from sandbox.games import GAMES

    if as_json:
        print(
            json_text(
                [
                    {
                        "name": g.name,
                        "ale_id": g.ale_id,
                        "actions": list(g.actions),
                        "objects": list(g.single_categories),
                        "object_lists": list(g.list_categories),
                        "description": g.describe(),
                    }
                    for g in GAMES.values()
                ]
            )
        )
        return
    for game in GAMES.values():
        if verbose:
            print(game.describe() + "\n")
        else:
            print(
                f"{game.name:<14} {len(game.actions):>2} actions  objects: "
                + ", ".join(game.categories)
            )


def register(app: typer.Typer) -> None:
    app.command("check")(check_command)
    app.command("games")(games_command)
