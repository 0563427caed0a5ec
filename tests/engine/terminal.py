"""Test support: a real command with its stderr on a pseudo-terminal, as a person runs it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time


def run_on_a_terminal(
    argv: list[str], env: dict[str, str], seconds: float
) -> tuple[int, str, bytes]:
    """(exit code, stdout, what the terminal showed) of `argv` run with stderr on a pty, so
    that the command draws its live progress; stdout stays a pipe."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=terminal, text=True, env=env)
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    out = process.communicate(timeout=60)[0]
    return process.returncode, out, shown
