"""Linux namespaces via bubblewrap: the default local wall, started warm.

Each sandbox is one `bwrap` invocation: fresh mount, pid, network (empty: no route anywhere),
IPC, UTS and cgroup namespaces, inside a cgroup of its own (memory, pids, and a cpuset with its
one core). Its file system shows only

    /usr, /lib*, /bin, /etc/ld.so.cache     the system libraries
    the interpreter's binary, libpython and standard library (its base site-packages hidden)
    the environment's site-packages
    /opt/evocade/sandbox: this package (not the rest of the checkout)
    /proc, a minimal /dev, an empty /tmp

all read-only; the Python pieces at their host paths (the fork server's modules were imported
from there) under parent directories that can be traversed but not listed (0711), so nothing of
the host's tree above them shows (say a home directory that is 0700 on the host). Nothing is
writable by the harness or the policy.

bwrap's own process runs `cat` on a pipe that the pool holds: the sandbox lives exactly as long
as that pipe is open, so it dies with its pool even after a SIGKILL (and `--die-with-parent`
takes care of a bwrap caught half-started; sandboxes are only started from threads that
outlive them: the pool's warmer, or the thread that plays the episode at once). The harness and
the policy do not come from an exec: the fork server (`sandbox.backends.forkserver`) forks a
pre-imported harness into the sandbox's namespaces. Each sandbox serves one episode and is then
torn down.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.backends.base import SandboxUnavailable
from sandbox.backends.cgroups import SandboxCgroup, enter_argv, reap_stale_groups
from sandbox.backends.uids import UidLease
from sandbox.names import BackendKind
from sandbox.runtime.constants import HARNESS_ENV

PACKAGE_ROOT_INSIDE = "/opt/evocade"  # the `sandbox` package shows at /opt/evocade/sandbox
STUB_START_SECONDS = 30.0
STUB_NAMESPACES = (
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup",
    "--hostname",
    "evocade",
    "--new-session",
    "--die-with-parent",  # a bwrap still starting when its pool dies goes too
)
"""bwrap's namespaces and session for every sandbox (the module docstring lists them)."""
STUB_SYSTEM_MOUNTS = (
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
    "--dir",
    "/etc",
    "--ro-bind",
    "/etc/ld.so.cache",
    "/etc/ld.so.cache",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
)
"""The system's part of every sandbox's file system: /usr and its links, the loader's cache."""


@dataclass(frozen=True)
class PythonLayout:
    """The pieces of this interpreter a sandbox needs, bound read-only at their host paths (the
    fork server's modules were imported from there, and keep loading from there)."""

    executable: str  # the real binary (the venv's python is a symlink to it)
    library: str | None  # libpythonX.Y.so when the interpreter links it dynamically
    stdlib: str
    base_site: str  # the base installation's site-packages: hidden inside
    site: list[str]  # the active environment's site-packages
    package_root: str  # holds the `sandbox` package

    @classmethod
    def current(cls) -> PythonLayout:
        import site

        library = None
        if sysconfig.get_config_var("Py_ENABLE_SHARED"):
            name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
            candidate = Path(sysconfig.get_config_var("LIBDIR") or "") / str(name)
            library = str(candidate.resolve()) if candidate.exists() else None
        stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
        return cls(
            executable=str(Path(sys.executable).resolve()),
            library=library,
            stdlib=str(stdlib),
            base_site=str(stdlib / "site-packages"),
            site=[str(Path(p).resolve()) for p in site.getsitepackages() if os.path.isdir(p)],
            package_root=str(Path(__file__).resolve().parents[2]),
        )

    def bound(self) -> list[str]:
        paths = [self.executable, self.library, self.stdlib, *self.site]
        return [path for path in paths if path and not path.startswith("/usr/")]

    def policy_view(self) -> dict[str, Any]:
        """Where the policy process finds its interpreter inside the sandbox (the real binary;
        under /tmp it shows at `policy_path`): the forked policy is told, so that
        `sys.executable` names what it can see, as an exec'd one's did. (Its `sys.path` keeps
        the zygote's host paths: everything it may import is imported already.)"""
        return {"executable": policy_path(self.executable)}

    def binds(self) -> list[str]:
        """bwrap arguments: parents first, traverse-only (0711: nothing of the host's tree
        above a bound path can be listed), then the paths, then the base site-packages
        masked by an empty read-only tmpfs. A path under /tmp (a checkout there) is bound a
        second time at `policy_path`: the policy's own empty /tmp hides the first."""
        # The package at a neutral path: its host parent is the checkout, whose other files
        # the sandbox must not see, and a directory has to be listable for imports from it.
        args: list[str] = ["--dir", PACKAGE_ROOT_INSIDE]
        made = {"/", "/usr", "/tmp", "/proc", "/dev", "/etc", "/opt", PACKAGE_ROOT_INSIDE}
        pairs = [(path, path) for path in self.bound()]
        pairs += [(path, policy_path(path)) for path in self.bound() if policy_path(path) != path]
        for _, inside in pairs:
            for parent in _parents(inside):
                if parent not in made:
                    args += ["--perms", "0711", "--dir", parent]
                    made.add(parent)
        for host, inside in pairs:
            args += ["--ro-bind", host, inside]
        if os.path.isdir(self.base_site) and self.base_site not in self.site:
            args += ["--tmpfs", self.base_site, "--remount-ro", self.base_site]
        package = f"{self.package_root}/sandbox"
        args += ["--ro-bind", package, f"{PACKAGE_ROOT_INSIDE}/sandbox"]
        return args


def policy_path(path: str) -> str:
    """Where the policy process finds a bound host path: the same, unless the policy's private
    /tmp would hide it."""
    if path == "/tmp" or path.startswith("/tmp/"):
        return f"{PACKAGE_ROOT_INSIDE}/host{path}"
    return path


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


class BwrapBackend:
    """Builds bwrap sandboxes; the pool asks the fork server to fill them."""

    name: BackendKind = "bwrap"
    isolate = True

    def __init__(self, memory_mb: int, pids: int, tmpfs_mb: int) -> None:
        self.bwrap = shutil.which("bwrap")
        self.setpriv = shutil.which("setpriv")
        self.cat = shutil.which("cat")
        self.sh = shutil.which("sh")
        if self.bwrap is None:
            raise SandboxUnavailable("bubblewrap is not installed (apt-get install -y bubblewrap)")
        if self.setpriv is None or self.cat is None or self.sh is None:
            raise SandboxUnavailable(
                "setpriv/cat missing (apt-get install -y util-linux coreutils)"
            )
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "the bwrap backend must start as root to set cgroup limits and give each "
                "sandbox uids of its own; run as root or use --sandbox docker"
            )
        self.memory_mb = memory_mb
        self.pids = pids
        self.tmpfs_mb = tmpfs_mb
        self.layout = PythonLayout.current()
        reap_stale_groups()

    def stub_argv(self, uid: int, info_fd: int) -> list[str]:
        """bwrap holding an empty sandbox open with `cat` (the module docstring says why)."""
        return [
            str(self.bwrap),
            *STUB_NAMESPACES,
            *self._file_system(),
            "--clearenv",
            "--info-fd",
            str(info_fd),
            "--",
            *self._unprivileged(uid),
            str(self.sh),
            "-c",
            f"echo up; exec {self.cat}",  # "up" once bwrap has built everything
        ]

    def _file_system(self) -> list[str]:
        """The sandbox's mounts: the system's libraries, /proc, /dev, an empty /tmp, the
        Python pieces (`PythonLayout.binds`), all read-only."""
        return [
            *STUB_SYSTEM_MOUNTS,
            "--size",
            str(self.tmpfs_mb * 1024 * 1024),
            "--tmpfs",
            "/tmp",
            *self.layout.binds(),  # before /tmp is read-only: a checkout there is bound there
            "--remount-ro",
            "/tmp",
            "--remount-ro",
            "/",
            "--chdir",
            "/",
        ]

    def _unprivileged(self, uid: int) -> list[str]:
        """setpriv: the stub's `cat` runs as `uid`, without groups, capabilities or any way to
        gain privileges."""
        return [
            str(self.setpriv),
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]

    def spawn_spec(self, lease: UidLease, cgroup: SandboxCgroup, init_pid: int) -> dict[str, Any]:
        return {
            "isolate": True,
            "init_pid": init_pid,
            "cgroup_procs": cgroup.procs_files,
            "uid": lease.harness_uid,
            "policy_uid": lease.policy_uid,
            "cpu": cgroup.cpu,
            "env": HARNESS_ENV,
            "policy_view": self.layout.policy_view(),
        }


@dataclass
class Stub:
    """A started bwrap holding an empty sandbox; `init_pid` names its namespaces."""

    process: subprocess.Popen[bytes]
    keepalive_fd: int  # the write end of cat's stdin: closing it ends the sandbox
    init_pid: int

    def alive(self) -> bool:
        return self.keepalive_fd >= 0 and self.process.poll() is None

    def destroy(self) -> None:
        if self.keepalive_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.close(self.keepalive_fd)
        self.keepalive_fd = -1
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def start_stub(backend: BwrapBackend, uid: int, cgroup: SandboxCgroup) -> Stub:
    """Start bwrap inside `cgroup`; return once its sandbox is complete (bwrap reports the
    sandbox's first process early, before the mounts are done: the stub's "up" comes after)."""
    stdin_read, stdin_write = os.pipe()
    info_read, info_write = os.pipe()
    up_read, up_write = os.pipe()
    process = subprocess.Popen(
        enter_argv(cgroup, backend.stub_argv(uid, info_write)),
        stdin=stdin_read,
        stdout=up_write,
        stderr=subprocess.PIPE,
        pass_fds=(info_write,),
        env={},
        start_new_session=True,
    )
    os.close(stdin_read)
    os.close(info_write)
    os.close(up_write)
    deadline = time.monotonic() + STUB_START_SECONDS
    try:
        info = json.loads(_read_until(info_read, b"}", deadline, process))
        _read_until(up_read, b"\n", deadline, process)
    except (SandboxUnavailable, ValueError) as error:
        with contextlib.suppress(OSError):
            os.close(stdin_write)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise SandboxUnavailable(str(error)) from error
    finally:
        os.close(info_read)
        os.close(up_read)
        if process.stderr is not None:
            process.stderr.close()
    return Stub(process, stdin_write, int(info["child-pid"]))


def _read_until(fd: int, end: bytes, deadline: float, process: subprocess.Popen[bytes]) -> bytes:
    """Bytes from `fd` up to and including `end`, or SandboxUnavailable saying why not."""
    data = b""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while end not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise SandboxUnavailable("bwrap did not start its sandbox in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            error = process.stderr.read().decode("utf-8", "replace") if process.stderr else ""
            raise SandboxUnavailable(f"bwrap failed to start: {error.strip()[-500:]}")
        data += chunk
    return data[: data.index(end) + len(end)]
