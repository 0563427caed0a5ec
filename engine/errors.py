"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user: shown as `error: <message>` without a traceback."""

    exit_code = 2


class BackendUnavailable(UserError):
    """No sandbox backend can start here (no Docker engine, no bubblewrap): the input was fine,
    the machine is not ready, so exit 1 (the README's exit-code table); nothing is stored."""

    exit_code = 1
