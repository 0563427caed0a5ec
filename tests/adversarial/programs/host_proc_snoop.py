"""Look at other processes through /proc: list them, read their command lines, memory and fds.

The sandbox has its own PID namespace: only its own init, the harness and the policy are there,
nothing of the host (no pytest, no dockerd). The harness is not dumpable, so its mem, environ,
fd and maps are closed to the policy although both run as uid 65534. The policy prints what it
saw and plays NOOP.

attack: /proc of other processes: cmdlines, /proc/<harness>/mem, fd, maps
family: host
layer: PID namespace; the harness is not dumpable (its /proc files are root's)
expect: ok
checker: reject
score: noop
"""
import os


# harness_pid(), filled in by the test (tests/adversarial/catalog.py FIND_HARNESS):
# @FIND_HARNESS@

done = []


def act(obs):
    if done:
        return 0
    done.append(True)
    pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    lines = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ")
        except OSError:
            cmdline = b"?"
        lines.append((pid, cmdline[:80]))
        if b"pytest" in cmdline or b"dockerd" in cmdline:
            print("ESC" + "APED", "host process visible", pid, cmdline[:80])
    harness = harness_pid()
    for name in ("mem", "environ", "maps", "fd/1"):
        try:
            with open(f"/proc/{harness}/{name}", "rb") as handle:
                print("ESC" + "APED", name, handle.read(32))
        except OSError as error:
            lines.append((name, type(error).__name__))
    try:
        print("ESC" + "APED", os.listdir(f"/proc/{harness}/fd"))
    except OSError:
        pass
    print(lines)
    return 0
