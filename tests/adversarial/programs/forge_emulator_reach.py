"""Look for the emulator and the reward counter from inside the policy process.

The emulator, OCAtari and the score live in the harness, another process: no Python object of
theirs exists here (gc finds none), ale_py cannot be imported any more (its native code would
need executable memory), and the harness's memory is closed (not dumpable). The policy prints
what it found and plays NOOP; the score is the emulator's.

attack: find the emulator/reward in the policy process (gc, import ale_py, /proc/<harness>/mem)
family: forgery
layer: process split: the emulator and the score live in the harness process
expect: ok
checker: reject
score: noop
"""
import gc
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

found = []


def act(obs):
    if not found:
        found.append([type(o).__name__ for o in gc.get_objects() if "ALE" in type(o).__name__])
        try:
            import ale_py  # noqa: F401

            print("ESC" + "APED", "imported ale_py")
        except ImportError as error:
            found.append(repr(error)[:80])
        try:
            with open(f"/proc/{harness_pid()}/mem", "rb") as handle:
                print("ESC" + "APED", handle.read(16))
        except OSError as error:
            found.append(repr(error))
        print(found)
    return 0
