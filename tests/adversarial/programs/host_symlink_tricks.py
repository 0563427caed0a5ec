"""Reach host files through links: a symlink in /tmp, /proc/<pid>/root, /proc/self/cwd/...

A symlink to the sentinel resolves inside the sandbox's own mount namespace, where the
sentinel does not exist, and seccomp refuses symlink() anyway; /proc/<harness>/root and
/proc/1/root belong to processes the policy may not inspect, or lead back into the same
namespace. The policy re-raises the last refusal.

attack: symlink and /proc/<pid>/root tricks towards the host sentinel
family: host
layer: mount namespace; seccomp refuses symlink; /proc of the non-dumpable harness is closed
expect: error
checker: reject
"""
import os


# harness_pid(), filled in by the test (tests/adversarial/catalog.py FIND_HARNESS):
# @FIND_HARNESS@


def act(obs):
    last = None
    try:
        os.symlink("@SENTINEL@", "/tmp/link")
        print("ESC" + "APED", "symlink made")
    except OSError as error:
        last = error
    paths = [
        "/tmp/link",
        f"/proc/{harness_pid()}/root@SENTINEL@",
        "/proc/1/root@SENTINEL@",
        "/proc/self/cwd/../..@SENTINEL@",
        "/proc/self/root/../../..@SENTINEL@",
    ]
    for path in paths:
        try:
            with open(path) as handle:
                print("ESC" + "APED", path, handle.read())
        except OSError as error:
            last = error
    raise last
