"""The settings every side of a sandbox agrees on, defined once.

Standard library only (nothing at all, in fact): the runtime inside the sandbox imports this
module exactly as the host's backends do, so neither keeps a copy that could drift.
"""

from __future__ import annotations

HARNESS_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",  # same program + same seed => same episode
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
"""The harness's environment inside any sandbox (the docker image sets the same)."""

MAX_MESSAGE_BYTES = 1 << 16
"""The largest control message read at once: a pool's spawn request to its fork server, the
fork server's to the policy zygote, and their replies (each one short JSON line)."""

EMPTY_TMP_BYTES = 1 << 20
"""The size of an empty read-only /tmp: a docker container's, and the policy process's own
under bwrap (the bwrap harness's /tmp takes `Limits.tmpfs_mb`, a recorded setting)."""
