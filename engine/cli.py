"""The `evocade` command line: parses arguments, calls library functions, prints.

Everything a command does is a function elsewhere that a test can call directly.
"""

from __future__ import annotations

import sys

import typer
from typer.exceptions import Abort, TyperException

from engine.errors import UserError

app = typer.Typer(
    name="evocade",
    help="Sandboxed LLM optimization of game-playing policy programs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from engine import cli_doctor, cli_run, cli_sandbox, cli_storage, cli_view

    cli_doctor.register(app)
    cli_run.register(app)
    cli_sandbox.register(app)
    cli_storage.register(app)
    cli_view.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `evocade` console script; returns the exit code."""
    try:
        result = app(args=argv, standalone_mode=False)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except typer.Exit as done:
        return done.exit_code
    except TyperException as error:  # usage errors: unknown option, missing argument, ...
        print(f"error: {error.format_message()}", file=sys.stderr)
        return error.exit_code
    except Abort:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
