"""Lock the untrusted policy process down before any of its code runs.

This is the innermost OS layer (DESIGN.md §4.3): resource limits that the kernel enforces on this
one process, and a seccomp filter that refuses the system calls a policy never needs. It holds
even when the static checker is off and the policy has full Python at its disposal.
"""

from __future__ import annotations

import errno
import resource

import pyseccomp

# Refused with EPERM, so Python raises PermissionError and the policy ends with status `error`.
# process creation and program execution
_NO_PROCESSES = ("fork", "vfork", "clone", "clone3", "execve", "execveat")
# networking of any kind (the namespace has no route out either; this is the second wall)
_NO_NETWORK = (
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
)
# reaching other processes: the harness shares this uid, so signals and memory access must go
_NO_OTHER_PROCESSES = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    "kcmp",
    "setsid",
    "setpgid",
    "process_madvise",
    "process_mrelease",
    "move_pages",
    "migrate_pages",
)
# kernel attack surface a game policy has no use for
_NO_KERNEL_SURFACE = (
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "personality",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "memfd_create",
    "mknod",
    "mknodat",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "ioperm",
    "iopl",
    "modify_ldt",
    "name_to_handle_at",
    "open_by_handle_at",
    "fanotify_init",
    "inotify_init",
    "inotify_init1",
    "prctl",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
)
# state that would outlive the episode: files in the sandbox's tmpfs (shared with the harness and
# with the next episode of the same worker) and System V / POSIX IPC objects (they live as long
# as the sandbox's IPC namespace). RLIMIT_FSIZE=0 already stops data being written; these stop
# names being made, renamed, removed or re-permissioned, which carry information just as well.
_NO_FILESYSTEM_CHANGES = (
    "creat",
    "openat2",  # its flags sit in a struct the filter cannot read; Python never uses it
    "mkdir",
    "mkdirat",
    "symlink",
    "symlinkat",
    "link",
    "linkat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
    "truncate",
    "ftruncate",
    "fallocate",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "utime",
    "utimes",
    "futimesat",
    "utimensat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
)
_NO_SHARED_IPC = (
    "shmget",
    "shmat",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
)

_PROT_EXEC = 0x4
_O_ACCMODE = 0o3
_O_CREAT = 0o100
_O_TRUNC = 0o1000
_F_SETOWN = 8
_F_SETSIG = 10
_F_SETOWN_EX = 15
_LOW_32 = 0xFFFF_FFFF


def _refuse(syscall_filter: pyseccomp.SyscallFilter, syscall: str, *args: pyseccomp.Arg) -> None:
    """Fail `syscall` with EPERM (when all `args` conditions hold).

    A name this architecture does not have (e.g. open or ioperm on arm64) needs no rule; any
    other failure to add one is an error, never a silently weaker filter.
    """
    if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, syscall) < 0:
        return
    syscall_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), syscall, *args)


def _refuse_new_executable_memory(syscall_filter: pyseccomp.SyscallFilter) -> None:
    """No new machine code: refuse mmap/mprotect with PROT_EXEC.

    Every extension module a policy may import is loaded before the filter goes on, so this
    only stops native code smuggled in later (ctypes, a shared object written to the tmpfs).
    """
    for syscall in ("mmap", "mprotect", "pkey_mprotect"):
        syscall_filter.add_rule(
            pyseccomp.ERRNO(errno.EPERM),
            syscall,
            pyseccomp.Arg(2, pyseccomp.MASKED_EQ, _PROT_EXEC, _PROT_EXEC),
        )


def _refuse_writable_opens(syscall_filter: pyseccomp.SyscallFilter) -> None:
    """open/openat only for reading: no O_WRONLY/O_RDWR, no O_CREAT, no O_TRUNC."""
    for syscall, flags_arg in (("open", 1), ("openat", 2)):
        for mask, value in (
            (_O_ACCMODE, 1),
            (_O_ACCMODE, 2),
            (_O_ACCMODE, 3),
            (_O_CREAT, _O_CREAT),
            (_O_TRUNC, _O_TRUNC),
        ):
            _refuse(
                syscall_filter, syscall, pyseccomp.Arg(flags_arg, pyseccomp.MASKED_EQ, mask, value)
            )


def _refuse_acting_on_other_processes(syscall_filter: pyseccomp.SyscallFilter) -> None:
    """Calls that take a pid may name this process (0) only.

    (NE 0 compares all 64 bits of the register: any value but an exact 0 is refused, and the
    kernel reads an exact 0 as the caller itself, so no upper-bits trick gets through.)

    The harness runs under the same uid, and for a same-uid target the kernel allows these
    without any capability: `prlimit(harness, RLIMIT_NOFILE, 0)` makes the harness fail, and
    a pipe end whose owner is set to the harness (F_SETOWN + O_ASYNC) has the kernel signal it
    on every read, SIGKILL included with F_SETSIG. Both were found by tests/adversarial.
    """
    ne_zero = {
        "prlimit64": 0,
        "sched_setaffinity": 0,
        "sched_setscheduler": 0,
        "sched_setparam": 0,
        "sched_setattr": 0,
        "setpriority": 1,
        "ioprio_set": 1,
    }
    for syscall, pid_arg in ne_zero.items():
        _refuse(syscall_filter, syscall, pyseccomp.Arg(pid_arg, pyseccomp.NE, 0))
    # fcntl's command is an `unsigned int`: the kernel drops the upper half of the register,
    # so compare the lower 32 bits only (an EQ on all 64 let `(1 << 32) | F_SETOWN` through).
    for command in (_F_SETOWN, _F_SETSIG, _F_SETOWN_EX):
        _refuse(syscall_filter, "fcntl", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, _LOW_32, command))


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


def install_seccomp_filter() -> None:
    """Load the filter (it sets no_new_privs first); from here on it cannot be lifted."""
    syscall_filter = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    refused = (
        _NO_PROCESSES
        + _NO_NETWORK
        + _NO_OTHER_PROCESSES
        + _NO_KERNEL_SURFACE
        + _NO_FILESYSTEM_CHANGES
        + _NO_SHARED_IPC
    )
    for syscall in refused:
        _refuse(syscall_filter, syscall)
    _refuse_new_executable_memory(syscall_filter)
    _refuse_writable_opens(syscall_filter)
    _refuse_acting_on_other_processes(syscall_filter)
    syscall_filter.load()


def confine(memory_mb: int, cpu_seconds: int) -> None:
    set_resource_limits(memory_mb, cpu_seconds)
    install_seccomp_filter()
