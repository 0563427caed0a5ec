"""Write fake result lines straight to file descriptors 1 and 2, /dev/stdout and
sys.__stdout__, claiming 21 points.

The runner's fd 1 and 2 are /dev/null (the harness's own result stream is never inherited by
the policy process), so nothing reaches the host; the reported return is the emulator's.

attack: fake result lines on fd 1/2, /dev/stdout, /proc/self/fd/1, sys.__stdout__
family: forgery
layer: process split: the policy's fd 1 and 2 are /dev/null; the harness counts the score
expect: ok
checker: reject
score: noop
"""
import os
import sys


def harness_pid():
    """The trusted harness: our parent where it execs us (docker), else the sandbox's python
    process under the other uid of our pair (bwrap forks us from a keeper that stays outside
    the sandbox's pid namespace, so there getppid() says 0)."""
    parent = os.getppid()
    if parent:
        return parent
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                uid = int([line for line in status if line.startswith("Uid:")][0].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                python = b"python" in cmdline.read()
        except (OSError, IndexError, ValueError):
            continue
        if python and uid == os.getuid() - 1:
            return int(entry)
    return parent

FAKE = (
    b'{"seed":0,"status":"ok","return":21.0,"length":1,"error":null,"wall_seconds":0.1,'
    b'"output":"","trace":null}\n'
)


def act(obs):
    os.write(1, FAKE)
    os.write(2, FAKE)
    sys.__stdout__.write(FAKE.decode())
    sys.__stdout__.flush()
    for path in ("/dev/stdout", "/proc/self/fd/1", f"/proc/{harness_pid()}/fd/1"):
        try:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, FAKE)
            os.close(fd)
            if "ppid" in path:
                print("ESC" + "APED", "wrote to the harness's stdout")
        except OSError:
            pass
    return 0
