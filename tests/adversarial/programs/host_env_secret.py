"""Look for the host's secrets in environment variables: its own, PID 1's, the harness's.

The test process sets @SECRET_NAME@ to a random secret before any sandbox starts. bwrap starts
the sandbox with --clearenv, docker with the sandbox's fixed environment only, and the harness
starts the policy with a handful of fixed variables; /proc/<pid>/environ of the harness and of
PID 1 is closed to the policy (the harness is not dumpable). The policy prints everything it
could read; the suite checks that the secret appears nowhere in the result.

attack: environment variables: os.environ, /proc/self|1|<harness>/environ
family: host
layer: clean environments (bwrap --clearenv, docker env, harness env); harness not dumpable
expect: ok
checker: reject
score: noop
"""
import os


# harness_pid(), filled in by the test (tests/adversarial/catalog.py FIND_HARNESS):
# @FIND_HARNESS@

seen = []


def act(obs):
    if not seen:
        seen.append(dict(os.environ))
        for pid in ("self", "1", str(harness_pid())):
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    seen.append((pid, handle.read()))
            except OSError as error:
                seen.append((pid, repr(error)))
        if "@SECRET_NAME@" in os.environ:
            print("ESC" + "APED", os.environ["@SECRET_NAME@"])
        print(seen)
    return 0
