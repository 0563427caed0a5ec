"""Use getattr as a value: reduce and map feed it names the checker never sees in a call.

`functools.reduce(getattr, ["gi_frame", "f_back", "f_globals"], generator)` walks frames
without a single `getattr(x, "...")` call in the source. The checker now rejects getattr & co.
anywhere but as the callee of a call (computed-attribute); the runtime guard refuses frame
attributes whatever calls it. With the checker off the walk reaches the runner's globals and
the policy tries to become a session leader to outlive the sandbox: seccomp refuses setsid.

attack: functools.reduce(getattr, [...frame attributes...]) to the runner's globals, then setsid
family: introspection
layer: seccomp refuses setsid (EPERM); the checker now rejects getattr as a value [fixed here]
expect: error
checker: reject
"""
import functools


def walker():
    yield functools.reduce(getattr, ["gi_frame", "f_back", "f_back", "f_globals"], running[0])


running = []


def act(obs):
    generator = walker()
    running.append(generator)
    namespace = next(generator)
    os = namespace["os"]
    os.setsid()
    print("ESC" + "APED", "new session")
    return 0
