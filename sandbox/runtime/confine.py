"""Lock the untrusted policy process down before any of its code runs.

This is the innermost OS layer (docs/DESIGN.md §4.3): resource limits that the kernel enforces on
this one process, and a seccomp filter that is an **allowlist**: exactly the system calls that
CPython and the policy runner make once everything a policy may use is imported (measured with
strace on policies that allocate, sort, print, recurse, raise and run out of memory), each with
its arguments narrowed where that matters. Everything else, every future system call included,
fails with EPERM, so Python raises PermissionError and the episode ends with status `error`.
A call from another ABI (x32 numbers, i386 via int 0x80) kills the process.

What the allowlist leaves out on purpose (the second round of hostile programs used each):
anything that creates processes or threads, any socket, any other process (signals, ptrace,
priorities and I/O priorities for a group or a user, prlimit of another pid), any file change
(xattrs, modes, flags through ioctl, renames, links), any global kernel pool (AIO contexts,
POSIX timers and their signal quota, sync/syncfs, fadvise, flock, inotify, SysV and POSIX IPC),
namespaces, mounts, BPF, perf, keyrings, io_uring, userfaultfd, new executable memory.

It holds when the static checker is off and the policy has full Python at its disposal.
"""

from __future__ import annotations

import errno
import resource

import pyseccomp

# Plain calls on what the process already has: its memory, its descriptors, its clock.
_ALLOWED = (
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "close",
    "lseek",
    "fstat",
    "newfstatat",
    "statx",
    "stat",
    "lstat",
    "readlink",
    "readlinkat",
    "statfs",
    "fstatfs",
    "getcwd",
    "getdents64",
    "brk",
    "munmap",
    "mremap",
    "madvise",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "clock_nanosleep",
    "nanosleep",
    "sched_yield",
    "sched_getaffinity",
    "getrandom",
    "getpid",
    "gettid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getrusage",
    "times",
    "uname",
    "exit",
    "exit_group",
)

_PROT_EXEC = 0x4
# open/openat: read-only, nothing created or truncated (O_ACCMODE | O_CREAT | O_TRUNC | O_TMPFILE's
# __O_TMPFILE bit), in one masked comparison.
_WRITE_FLAGS = 0o3 | 0o100 | 0o1000 | 0o20000000
_TCGETS = 0x5401  # isatty(), which io.open() asks of every file it opens
_F_GETFD, _F_SETFD, _F_GETFL = 1, 2, 3
_FUTEX_PRIVATE_FLAG = 128
_LOW_32 = 0xFFFF_FFFF


def _allow(syscall_filter: pyseccomp.SyscallFilter, syscall: str, *args: pyseccomp.Arg) -> None:
    """Allow `syscall` (when all `args` conditions hold). A name this architecture does not
    have (e.g. `open` or `stat` on arm64) needs no rule; any other failure is an error, never
    a silently different filter."""
    if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, syscall) < 0:
        return
    syscall_filter.add_rule(pyseccomp.ALLOW, syscall, *args)


def _allow_narrowed(syscall_filter: pyseccomp.SyscallFilter) -> None:
    """Calls a policy needs only in a harmless form."""
    no_exec = pyseccomp.Arg(2, pyseccomp.MASKED_EQ, _PROT_EXEC, 0)
    for syscall in ("mmap", "mprotect"):  # no new machine code: no ctypes, no smuggled .so
        _allow(syscall_filter, syscall, no_exec)
    _allow(syscall_filter, "open", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, _WRITE_FLAGS, 0))
    _allow(syscall_filter, "openat", pyseccomp.Arg(2, pyseccomp.MASKED_EQ, _WRITE_FLAGS, 0))
    # Commands are `unsigned int`: the kernel drops the register's upper half, so compare the
    # lower 32 bits only (an EQ on all 64 would let `(1 << 32) | command` through).
    _allow(syscall_filter, "ioctl", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, _LOW_32, _TCGETS))
    for command in (_F_GETFD, _F_SETFD, _F_GETFL):
        _allow(syscall_filter, "fcntl", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, _LOW_32, command))
    # glibc's own locks (pthread_once in the resolver, for one): private futexes only, which
    # the kernel keys by this process's memory, so no futex is shared with anyone.
    _allow(
        syscall_filter,
        "futex",
        pyseccomp.Arg(1, pyseccomp.MASKED_EQ, _FUTEX_PRIVATE_FLAG, _FUTEX_PRIVATE_FLAG),
    )
    # resource.getrlimit(): this process (pid 0), reading only (no new limit).
    _allow(
        syscall_filter,
        "prlimit64",
        pyseccomp.Arg(0, pyseccomp.EQ, 0),
        pyseccomp.Arg(2, pyseccomp.EQ, 0),
    )


def set_resource_limits(memory_mb: int, cpu_seconds: int) -> None:
    """Kernel limits on this process: memory, CPU, no files written, no children, no core."""
    memory_bytes = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # SIGXCPU at the soft limit, SIGKILL one second later: both are reported as `timeout`.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # Python ignores SIGXFSZ: writes fail
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))


def build_filter() -> pyseccomp.SyscallFilter:
    """The allowlist, not loaded (tests export it)."""
    syscall_filter = pyseccomp.SyscallFilter(defaction=pyseccomp.ERRNO(errno.EPERM))
    # Only the native ABI is in the filter; a call made through any other (x32 numbers on
    # x86-64, i386 through int 0x80) kills the process instead of meeting a rule.
    syscall_filter.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    syscall_filter.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)  # a binary tree: O(log n) a call
    for syscall in _ALLOWED:
        _allow(syscall_filter, syscall)
    _allow_narrowed(syscall_filter)
    for hot in ("read", "write"):  # twice a step each: first in the tree
        syscall_filter.syscall_priority(hot, 255)
    return syscall_filter


def install_seccomp_filter() -> None:
    """Load the filter (it sets no_new_privs first); from here on it cannot be lifted."""
    build_filter().load()


def confine(memory_mb: int, cpu_seconds: int) -> None:
    set_resource_limits(memory_mb, cpu_seconds)
    install_seccomp_filter()
