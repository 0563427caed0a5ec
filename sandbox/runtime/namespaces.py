"""The few kernel calls a forked process needs to step inside a bwrap sandbox and stay there.

bubblewrap builds each sandbox (namespaces, the read-only mount tree, /proc, /dev, tmpfs); the
fork server then moves a pre-imported harness into it the way `nsenter` does: setns(2) into
each of the sandbox's namespaces, chroot into its root, and drop to an unprivileged uid with
every capability gone. Python 3.11 has no os.setns/os.unshare, hence ctypes on libc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# The order matters: the mount namespace goes last, since /proc/<pid>/ns/* is opened up front
# but the root must be taken from the sandbox's mount namespace itself.
SANDBOX_NAMESPACES = (
    ("cgroup", CLONE_NEWCGROUP),
    ("ipc", CLONE_NEWIPC),
    ("uts", CLONE_NEWUTS),
    ("net", CLONE_NEWNET),
    ("pid", CLONE_NEWPID),
    ("mnt", CLONE_NEWNS),
)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_REC = 0x4000
MS_PRIVATE = 0x40000

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_BE = 2
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class NamespaceError(OSError):
    """A kernel call failed while entering or confining a sandbox."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise NamespaceError(errno, f"{what}: {os.strerror(errno)}")


def prctl(option: int, arg2: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg2), 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() or None,
        ),
        f"mount {target}",
    )


def join_sandbox(init_pid: int) -> None:
    """Enter every namespace of the sandbox whose first process is `init_pid`, and its root.

    Only this process's children land in the sandbox's pid namespace (setns(2)); the caller
    forks next. Needs root (CAP_SYS_ADMIN, CAP_SYS_CHROOT) and a single-threaded process.
    """
    proc = Path(f"/proc/{init_pid}")
    root = os.open(proc / "root", os.O_RDONLY | os.O_DIRECTORY)
    handles = [
        (os.open(proc / "ns" / name, os.O_RDONLY), flag) for name, flag in SANDBOX_NAMESPACES
    ]
    try:
        for handle, flag in handles:
            _check(_libc.setns(handle, flag), f"setns({flag:#x})")
        os.fchdir(root)
        os.chroot(".")
        os.chdir("/")
    finally:
        for handle, _ in handles:
            os.close(handle)
        os.close(root)


def enter_sandbox(cgroup_procs: list[str], init_pid: int) -> None:
    """Move this process into the sandbox's cgroups (each `cgroup.procs` file), then into its
    namespaces and root (`join_sandbox`): how the fork server's supervisor and the zygote's
    keeper both step in, before they fork the process that runs there."""
    for procs in cgroup_procs:
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))
    join_sandbox(init_pid)


def private_tmpfs(target: str, size_bytes: int) -> None:
    """A new mount namespace for this process with an empty read-only tmpfs at `target`:
    whatever the rest of the sandbox has there is out of sight (the policy's own /tmp)."""
    unshare(CLONE_NEWNS)
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    mount("tmpfs", target, "tmpfs", flags, f"size={size_bytes},mode=0555")
    mount("tmpfs", target, None, flags | MS_REMOUNT | MS_RDONLY)


def reset_priorities() -> None:
    """Nice 0 and best-effort I/O priority: whatever the fork server had, nothing carries over."""
    os.setpriority(os.PRIO_PROCESS, 0, 0)
    number = _SYS_IOPRIO_SET.get(os.uname().machine)
    if number is not None:
        # ioprio_set(IOPRIO_WHO_PROCESS, 0 = self, class BE, level 4 = the default)
        _check(_libc.syscall(number, IOPRIO_WHO_PROCESS, 0, (IOPRIO_CLASS_BE << 13) | 4), "ioprio")


def _last_capability() -> int:
    return int(Path("/proc/sys/kernel/cap_last_cap").read_text())


def drop_bounding_set() -> None:
    """Empty the capability bounding set (needs CAP_SETPCAP): no exec can grant any again."""
    for capability in range(_last_capability() + 1):
        prctl(PR_CAPBSET_DROP, capability)


def drop_privileges(uid: int, gid: int) -> None:
    """Become `uid`/`gid` for good: no supplementary groups, an empty bounding set, no ambient
    capabilities, no_new_privs. Checked afterwards: a process that still holds any capability
    refuses to go on."""
    for capability in range(_last_capability() + 1):
        prctl(PR_CAPBSET_DROP, capability)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # from root to non-root: permitted and effective sets cleared
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    status = Path("/proc/self/status").read_text().splitlines()
    held = {
        line.split(":")[0]: int(line.split()[1], 16)
        for line in status
        if line.startswith(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))
    }
    if any(held.values()) or os.getuid() != uid or os.getgid() != gid:
        raise NamespaceError(0, f"privileges not fully dropped: {held}")


def move_fds(wanted: list[int]) -> None:
    """Put `wanted` at 3, 4, ... (inheritable) and close every other descriptor above 2: what
    a forked process keeps of its parent's descriptors is exactly what it is given."""
    parked = [os.dup2(fd, 1000 + index) for index, fd in enumerate(wanted)]  # clear of 3..N
    for target, fd in enumerate(parked, start=3):
        os.dup2(fd, target)
    os.closerange(3 + len(wanted), os.sysconf("SC_OPEN_MAX"))


def fork_running(work: Callable[[], None], failure_code: int) -> int:
    """Fork a child that runs `work` and leaves at once (os._exit: never back into the
    parent's code): status 0, or `failure_code` with the traceback on stderr if it raised.
    Returns the child's pid to the parent."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = failure_code
        finally:
            sys.stderr.flush()
        os._exit(code)
    return pid
