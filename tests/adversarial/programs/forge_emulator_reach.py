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


# harness_pid(), filled in by the test (tests/adversarial/catalog.py FIND_HARNESS):
# @FIND_HARNESS@

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
