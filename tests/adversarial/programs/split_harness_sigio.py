"""Make the kernel SIGKILL the harness: own the pipe ends (F_SETOWN), pick SIGKILL (F_SETSIG),
turn on O_ASYNC.

The pipes between harness and policy are shared open files; with the harness as their owner
and O_ASYNC on, every read or write the harness makes has the kernel send it the chosen signal,
and a same-uid owner needs no privilege. Before the fix the harness died at its next read
(`crashed` for this and every later episode of the worker). Now seccomp refuses fcntl F_SETOWN,
F_SETOWN_EX and F_SETSIG. The policy also makes the raw system call with the command's upper 32
bits set, which the kernel drops: the first version of the fix compared all 64 bits and let that
through. Two seeds: the second episode must run as usual.

attack: fcntl F_SETOWN(harness) + F_SETSIG(SIGKILL) + O_ASYNC on the shared pipes
family: process-split
layer: seccomp refuses fcntl F_SETOWN/F_SETOWN_EX/F_SETSIG (EPERM) [fixed here]
expect: error, error
checker: reject
seeds: 2
"""
import ctypes
import fcntl
import os
import signal
import sys

SYS_FCNTL, HIGH = 72, 1 << 32


# harness_pid(), filled in by the test (tests/adversarial/catalog.py FIND_HARNESS):
# @FIND_HARNESS@


def raw_fcntl(fd, command, argument):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    args = (SYS_FCNTL, fd, command, argument)
    result = libc.syscall(*(ctypes.c_long(value) for value in args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def act(obs):
    harness = harness_pid()
    for fd in (int(sys.argv[1]), int(sys.argv[2])):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        try:
            raw_fcntl(fd, HIGH | fcntl.F_SETOWN, harness)
            raw_fcntl(fd, HIGH | fcntl.F_SETSIG, signal.SIGKILL)
            print("ESC" + "APED", "armed SIGIO with the upper bits set")
        except OSError:
            pass
        fcntl.fcntl(fd, fcntl.F_SETOWN, harness)
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGKILL)
    print("ESC" + "APED", "armed SIGIO")
    return 0
