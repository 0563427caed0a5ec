"""Reach an unlisted module through __loader__, __builtins__, sys.modules and importlib.

`__builtins__["__import__"]`, the module's `__loader__` / `__spec__.loader`, `sys.modules` and
`importlib.import_module("posix")` are the ways around an import allowlist. The checker rejects
the imports and the dunder names. With it off the policy does get `posix`, and tries to replace
itself with a shell: seccomp refuses execve (EPERM).

attack: __loader__ / __builtins__ / sys.modules / importlib to posix, then execv
family: introspection
layer: seccomp refuses execve (EPERM)
expect: error
checker: reject
"""
import importlib
import sys


def act(obs):
    loader = __loader__ if "__loader__" in globals() else None
    posix = sys.modules.get("posix") or importlib.import_module("posix")
    builtins = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
    os = builtins["__import__"]("os")
    print(loader, os.getpid())
    posix.execv("/bin/sh", ["sh", "-c", "touch @HOST_DIR@/owned"])
    print("ESC" + "APED", "execv returned")
    return 0
