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


# harness_pid(), filled in by the test (tests/adversarial/catalog.py FIND_HARNESS):
# @FIND_HARNESS@

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
