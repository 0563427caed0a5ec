"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user: shown as `error: <message>` without a traceback."""

    exit_code = 2
