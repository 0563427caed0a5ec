"""Look for a place to plant a module that the runner would import: the harness's /tmp or the
working directory on sys.path, a user site, a writable path entry.

Round two found the harness's /tmp as `sys.path[0]` while the runner imported its own modules,
before seccomp was loaded: a file planted there by an earlier episode would have run as the
runner, unconfined. Now the policy interpreter runs with -s -S -P and an environment of
PYTHONHASHSEED alone (what `python -I` gives, without dropping the hash seed), from cwd `/`,
with a private empty read-only /tmp: no path entry is /tmp, the cwd or empty, none is writable,
there is no user site, and `__main__` has no file. The policy checks all of it and would print
ESCAPED on any; it plays NOOP. The checker rejects `import sys`.

attack: find the harness's /tmp, the cwd or a writable directory on sys.path to plant a module
family: process-split
layer: -s -S -P, cleared environment, cwd /, private read-only /tmp [fixed here]
expect: ok
checker: reject
score: noop
"""
import os
import sys



def writable(path):
    """By the mount's flags and the mode bits (access() is not among the calls the sandbox
    allows)."""
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return False
    info = os.stat(path)
    if info.st_uid == os.getuid():
        return bool(info.st_mode & 0o200)
    if info.st_gid == os.getgid():
        return bool(info.st_mode & 0o020)
    return bool(info.st_mode & 0o002)


def on_tmp(path):
    """On the policy's /tmp itself (its tmpfs), where an episode could plant a file. A
    checkout under the host's /tmp is bound read-only on a mount of its own: not that."""
    return os.path.isdir(path) and os.stat(path).st_dev == os.stat("/tmp").st_dev


found = []
for entry in sys.path:
    real = os.path.realpath(entry or ".")
    if entry in ("", ".") or real == "/tmp" or real == os.getcwd():
        found.append(f"sys.path entry {entry!r}")
    if real.startswith("/tmp/") and on_tmp(real):
        found.append(f"sys.path entry {entry!r} on /tmp")
    if os.path.isdir(real) and writable(real):
        found.append(f"writable sys.path entry {entry!r}")
flags = sys.flags
if not (flags.safe_path and flags.no_site and flags.no_user_site):
    found.append(f"flags {flags}")
if getattr(sys.modules["__main__"], "__file__", None) is not None:
    found.append(f"__main__ file {sys.modules['__main__'].__file__}")
if os.getcwd() != "/" or os.listdir("/tmp") or writable("/tmp"):
    found.append(f"cwd {os.getcwd()}, /tmp {os.listdir('/tmp')}")
if "site" in sys.modules:
    found.append("site imported")
if found:
    print("ESC" + "APED", found)


def act(obs):
    return 0
