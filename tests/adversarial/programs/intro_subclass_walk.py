"""Walk from a tuple's class up to object and down its subclasses to os, then exec a shell.

The textbook Python-sandbox escape: `().__class__.__base__.__subclasses__()` lists every class
loaded, among them `os._wrap_close`, whose `__init__.__globals__` is the `os` module's namespace.
From there `execv` replaces the policy with a shell. With the checker on, every dunder name is
rejected before anything runs. With it off, plain Python does reach `os`: the wall is seccomp,
which refuses execve (and fork), so the call fails with EPERM.

attack: subclass walk to os._wrap_close, then execv /bin/sh
family: introspection
layer: seccomp refuses execve (EPERM)
expect: error
checker: reject
"""


def act(obs):
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":
            namespace = cls.__init__.__globals__
            namespace["execv"]("/bin/sh", ["sh", "-c", "touch @HOST_DIR@/owned"])
            print("ESC" + "APED", "execv returned")
    return 0
