"""The `evocade` command line: parses arguments, calls library functions, prints.

Everything a command does is a function elsewhere that a test can call directly.

Exit codes, the same for every command: 0 done, 1 finished with failures (a rejected program,
a failed episode) or no sandbox backend (`BackendUnavailable`: one line, nothing stored), 2 bad
input (one `error: ...` line, nothing run or changed), 130 interrupted (Ctrl-C), 143 SIGTERM.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata
from typing import Annotated

import typer
from typer.exceptions import Abort, TyperException

from engine.errors import UserError
from engine.textsafe import safe_line

app = typer.Typer(
    name="evocade",
    help="Sandboxed LLM optimization of game-playing policy programs.\n\n"
    "Example: evocade evaluate my_policy.py --game Pong --episodes 3",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_text() -> str:
    try:
        return f"evocade {metadata.version('evocade')}"
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "evocade (not installed)"


def _print_version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Sandboxed LLM optimization of game-playing policy programs.

    Example: evocade evaluate my_policy.py --game Pong --episodes 3
    """


COMMAND_MODULES = (  # each has `register(app)`; one line per module, so additions merge cleanly
    "engine.cli_backup",
    "engine.cli_doctor",
    "engine.cli_evaluate",
    "engine.cli_log",
    "engine.cli_run",
    "engine.cli_sandbox",
    "engine.cli_storage",
    "engine.cli_view",
)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `evocade` console script; returns the exit code.

    Error messages can quote untrusted text (a file name, a database value), so each is made
    terminal-safe and kept to one line.
    """
    try:
        result = app(args=argv, prog_name="evocade", standalone_mode=False)
    except UserError as error:
        print(f"error: {safe_line(error)}", file=sys.stderr)
        return error.exit_code
    except typer.Exit as done:
        return done.exit_code
    except TyperException as error:  # usage errors: unknown option, missing argument, ...
        print(f"error: {safe_line(error.format_message())}", file=sys.stderr)
        return error.exit_code
    except (Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
