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
