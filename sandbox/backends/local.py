"""`--sandbox none`: the harness as a plain child process, for trusted local debugging only.

No namespaces and no cgroup: the policy process still confines itself (rlimits, seccomp), but
it sees the host's files and network. The CLI warns loudly before using this.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sandbox.backends.base import WorkerOutcome, run_process
from sandbox.backends.bwrap import SANDBOX_ENV


class LocalBackend:
    name = "none"

    def run_worker(self, request: bytes, wall_seconds: float) -> WorkerOutcome:
        env = dict(SANDBOX_ENV)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        env["HOME"] = os.environ.get("HOME", "/tmp")
        env["MPLCONFIGDIR"] = os.environ.get("MPLCONFIGDIR", "/tmp")
        argv = [sys.executable, "-s", "-m", "sandbox.runtime.harness"]
        return run_process(argv, request, wall_seconds, env=env)
