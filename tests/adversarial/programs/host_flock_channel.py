"""Signal a concurrent sandbox (or the host) through flock() on a shared read-only inode.

Files under /usr are the host's own inodes in a bwrap sandbox; an flock on one is visible to
every other sandbox and to the host, a channel no namespace closes. Round two used it between
two concurrent sandboxes. The allowlist refuses flock (and fcntl locks: only F_GETFD, F_SETFD
and F_GETFL pass). The policy raises the refusal.

attack: flock(LOCK_EX) / fcntl(F_SETLK) on /usr/bin/env as a cross-sandbox channel
family: host
layer: seccomp allowlist (flock and fcntl locks refused) [fixed here]
expect: error
checker: reject
"""
import ctypes
import os

SYS_FLOCK, SYS_FCNTL, LOCK_EX, LOCK_NB, F_SETLK = 73, 72, 2, 4, 6
libc = ctypes.CDLL(None, use_errno=True)


def act(obs):
    fd = os.open("/usr/bin/env", os.O_RDONLY)
    if libc.syscall(SYS_FLOCK, fd, LOCK_EX | LOCK_NB) == 0:
        print("ESC" + "APED", "flock on a host inode")
    error = ctypes.get_errno()
    lock = (ctypes.c_short * 16)()
    lock[0] = 0  # F_RDLCK
    if libc.syscall(SYS_FCNTL, fd, F_SETLK, ctypes.byref(lock)) == 0:
        print("ESC" + "APED", "fcntl lock on a host inode")
    raise OSError(error, os.strerror(error))
