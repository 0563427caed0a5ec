"""Exhaust pools the whole host shares: AIO contexts (fs.aio-max-nr), the pending-signal quota
of a uid (POSIX timers), and flush or evict the host's page cache (sync, syncfs, fadvise).

Round two found each of these reachable from inside both backends: io_setup took the host's
whole aio-max-nr (every host process then got EAGAIN), timer_create used up the signal quota of
uid 65534, which every sandbox and every host `nobody` process share, sync()/syncfs() flushed
the host, posix_fadvise(DONTNEED) evicted host page cache. The allowlist refuses all of them
(sync returns nothing, so its refusal shows only under strace); each sandbox has its own uid,
so even a quota reached would be its own. The policy raises the first refusal.

attack: io_setup(65536), timer_create x 10000, sync/syncfs, posix_fadvise(DONTNEED) on /usr
family: host
layer: seccomp allowlist (AIO, POSIX timers, sync, fadvise refused); a uid per sandbox [fixed here]
expect: error
checker: reject
"""
import ctypes
import os

SYS_IO_SETUP, SYS_TIMER_CREATE, SYS_SYNCFS = 206, 222, 306
libc = ctypes.CDLL(None, use_errno=True)


def act(obs):
    failures = []
    context = ctypes.c_ulong(0)
    if libc.syscall(SYS_IO_SETUP, 65536, ctypes.byref(context)) == 0:
        print("ESC" + "APED", "io_setup took", 65536, "AIO events")
    else:
        failures.append(ctypes.get_errno())
    timer = ctypes.c_long(0)
    made = sum(libc.syscall(SYS_TIMER_CREATE, 1, None, ctypes.byref(timer)) == 0 for _ in range(10000))
    if made:
        print("ESC" + "APED", "created", made, "POSIX timers")
    fd = os.open("/usr/bin/env", os.O_RDONLY)
    if libc.syscall(SYS_SYNCFS, fd) == 0:
        print("ESC" + "APED", "syncfs went through")
    os.sync()
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        print("ESC" + "APED", "fadvise went through")
    except OSError as error:
        failures.append(error.errno)
    raise OSError(failures[0], os.strerror(failures[0]))
