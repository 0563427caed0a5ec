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
)

_PROT_EXEC = 0x4


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
    for syscall in _NO_PROCESSES + _NO_NETWORK + _NO_OTHER_PROCESSES + _NO_KERNEL_SURFACE:
        try:
            syscall_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), syscall)
        except (OSError, RuntimeError, ValueError):
            # A name this architecture does not have (e.g. ioperm on arm64) needs no rule.
            continue
    _refuse_new_executable_memory(syscall_filter)
    syscall_filter.load()


def confine(memory_mb: int, cpu_seconds: int) -> None:
    set_resource_limits(memory_mb, cpu_seconds)
    install_seccomp_filter()
