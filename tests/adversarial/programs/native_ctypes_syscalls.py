"""Call the kernel directly through ctypes: fork, kill the harness, ptrace it, open a socket.

ctypes reaches libc, which is already mapped, so these are real system calls made from native
code, below anything Python could intercept. The checker rejects `import ctypes`. With it off
the calls go through, and seccomp answers each with EPERM: the policy raises the first one as
an OSError.

attack: raw syscalls via ctypes/libc: fork, kill(harness), ptrace(harness), socket
family: native
layer: seccomp refuses fork/kill/ptrace/socket (EPERM)
expect: error
checker: reject
"""
import ctypes
import os

SYS_SOCKET, SYS_FORK, SYS_KILL, SYS_PTRACE = 41, 57, 62, 101


# harness_pid(), filled in by the test (tests/adversarial/catalog.py FIND_HARNESS):
# @FIND_HARNESS@


def act(obs):
    libc = ctypes.CDLL(None, use_errno=True)
    attempts = [
        (SYS_FORK,),
        (SYS_KILL, harness_pid(), 9),
        (SYS_PTRACE, 16, harness_pid(), 0, 0),  # PTRACE_ATTACH
        (SYS_SOCKET, 2, 1, 0),  # AF_INET, SOCK_STREAM
    ]
    failures = []
    for call in attempts:
        if libc.syscall(*call) == -1:
            failures.append(ctypes.get_errno())
        else:
            print("ESC" + "APED", "syscall", call[0], "succeeded")
    raise OSError(failures[0], os.strerror(failures[0]))
