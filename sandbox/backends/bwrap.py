"""Linux namespaces via bubblewrap: the default local wall.

Inside: a fresh mount namespace showing only the Python installation, the system libraries and
the `sandbox` package, all read-only; a small tmpfs at /tmp; no network (a new, empty network
namespace); a new pid namespace; host uid 65534 with every capability dropped; cgroup memory
and pids limits around the whole thing. The harness and the policy both live in here.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
from pathlib import Path

from sandbox.backends.base import SandboxUnavailable, WorkerOutcome, run_process
from sandbox.backends.cgroups import enter_argv, reap_stale_groups, sandbox_cgroup

SANDBOX_UID = 65534  # nobody
PACKAGE_MOUNT = "/opt/evocade"
SANDBOX_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "PYTHONPATH": PACKAGE_MOUNT,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "MPLCONFIGDIR": "/tmp",
    "MPLBACKEND": "Agg",
    "PYGAME_HIDE_SUPPORT_PROMPT": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def _python_paths() -> list[str]:
    """What the interpreter needs: its prefix, the venv, and their site-packages. Not the repo."""
    paths = {sys.base_prefix, sys.prefix, *site.getsitepackages()}
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        paths.add(site.getusersitepackages())
    resolved = {str(Path(path).resolve()) for path in paths if os.path.isdir(path)}
    # Bind the outermost directories only; /usr is bound anyway.
    kept = sorted(resolved)
    return [
        path
        for path in kept
        if not path.startswith("/usr")
        and not any(path != other and path.startswith(other + "/") for other in kept)
    ]


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


class BwrapBackend:
    name = "bwrap"

    def __init__(self, memory_mb: int, pids: int, tmpfs_mb: int) -> None:
        self.bwrap = shutil.which("bwrap")
        self.setpriv = shutil.which("setpriv")
        if self.bwrap is None:
            raise SandboxUnavailable("bubblewrap is not installed (apt-get install -y bubblewrap)")
        if self.setpriv is None:
            raise SandboxUnavailable("setpriv is not installed (apt-get install -y util-linux)")
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "the bwrap backend must start as root to set cgroup limits and switch the "
                f"sandbox to uid {SANDBOX_UID}; run as root or use --sandbox docker"
            )
        self.memory_mb = memory_mb
        self.pids = pids
        self.tmpfs_mb = tmpfs_mb
        reap_stale_groups()

    def argv(self) -> list[str]:
        package_dir = str(Path(__file__).resolve().parents[1])
        python = str(Path(sys.executable))
        args = [
            str(self.bwrap),
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup",
            "--hostname",
            "evocade",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--perms",
            "0755",
            "--dir",
            "/etc",
            "--ro-bind",
            "/etc/ld.so.cache",
            "/etc/ld.so.cache",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            str(self.tmpfs_mb * 1024 * 1024),
            "--tmpfs",
            "/tmp",
        ]
        made: set[str] = {"/usr", "/tmp", "/proc", "/dev", "/etc"}
        for path in [*_python_paths(), f"{PACKAGE_MOUNT}/sandbox"]:
            for parent in _parents(path):
                if parent not in made:
                    # bwrap would copy the host's mode (e.g. /root is 0700); nobody must pass.
                    args += ["--perms", "0755", "--dir", parent]
                    made.add(parent)
        for path in _python_paths():
            args += ["--ro-bind", path, path]
        args += ["--ro-bind", package_dir, f"{PACKAGE_MOUNT}/sandbox"]
        args += ["--chdir", "/tmp", "--clearenv"]
        for key, value in SANDBOX_ENV.items():
            args += ["--setenv", key, value]
        args += [
            "--",
            str(self.setpriv),
            f"--reuid={SANDBOX_UID}",
            f"--regid={SANDBOX_UID}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            python,
            "-s",
            "-m",
            "sandbox.runtime.harness",
        ]
        return args

    def run_worker(self, request: bytes, wall_seconds: float) -> WorkerOutcome:
        with sandbox_cgroup(self.memory_mb, self.pids) as group:
            outcome = run_process(enter_argv(group, self.argv()), request, wall_seconds, env={})
            usage = group.usage()
        return WorkerOutcome(
            stdout=outcome.stdout,
            stderr_tail=outcome.stderr_tail,
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            oom_killed=usage.oom_killed,
            stdout_truncated=outcome.stdout_truncated,
            peak_memory_mb=usage.peak_memory_mb,
        )
