"""List the directories above the interpreter, and the base installation's site-packages.

Round two found that bwrap made the parents of every bound path 0755, so the sandbox could list
and read the base Python installation inside a home directory that is 0700 on the host. Now the
parents of what is bound are traverse-only (0711) and the base installation's site-packages is
an empty tmpfs (bwrap); the image holds nothing of the host (docker). The policy finds nothing
and plays NOOP.

attack: list the interpreter's parent directories and the base site-packages
family: host
layer: mount namespace: traverse-only parents, base site-packages hidden [fixed here]
expect: ok
checker: reject
score: noop
"""
import os
import sys
import sysconfig

on_docker = os.path.exists("/.dockerenv")
stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
base_site = os.path.join(stdlib, "site-packages")
if not on_docker and os.path.isdir(base_site) and os.listdir(base_site):
    print("ESC" + "APED", "base site-packages:", sorted(os.listdir(base_site))[:5])
path = os.path.dirname(os.path.realpath(sys.executable))
while os.path.dirname(path) != "/" and not on_docker:  # "/" is the sandbox's own root
    parent = os.path.dirname(path)
    try:
        entries = os.listdir(parent)
    except PermissionError:
        entries = []
    if set(entries) - {os.path.basename(path), "lib", "bin", "include", "share"}:
        print("ESC" + "APED", parent, sorted(entries)[:5])
    path = parent


def act(obs):
    return 0
