"""Make system calls the allowlist has never heard of: a future number, then one through the
x32 ABI (the number with bit 30 set), which x86-64 kernels also accept.

The filter lists x86-64 calls only. A number with no rule (1000: no kernel has it yet) meets
the default action and fails with EPERM, which the policy checks; if it got anything else, the
policy raises and the episode ends `error` instead of `crashed`. Then `getpid` through the x32
ABI (0x40000000 | 39): libseccomp's x86-64 filter kills any x32 number outright, so the process
dies of SIGSYS and the episode is `crashed`; it never returns to say otherwise. The checker
rejects ctypes.

attack: a future syscall number (EPERM), then getpid through the x32 ABI (nr | 0x40000000)
family: native
layer: seccomp allowlist: unknown numbers EPERM, other ABIs kill the process (SIGSYS)
expect: crashed
checker: reject
"""
import ctypes
import errno

X32_SYSCALL_BIT, SYS_GETPID, FUTURE = 0x40000000, 39, 1000
libc = ctypes.CDLL(None, use_errno=True)


def act(obs):
    if libc.syscall(FUTURE) != -1 or ctypes.get_errno() != errno.EPERM:
        raise RuntimeError(f"syscall {FUTURE} was not refused with EPERM: {ctypes.get_errno()}")
    pid = libc.syscall(X32_SYSCALL_BIT | SYS_GETPID)
    print("ESC" + "APED", "x32 getpid returned", pid, "errno", ctypes.get_errno())
    return 0
