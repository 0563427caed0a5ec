"""Write files outside the tmpfs: the host directory, the sandbox package, /usr, /etc, and /tmp.

Outside /tmp the sandbox's file system is read-only (bwrap's read-only binds, docker's
read-only root), and the host directory is not there at all. Inside /tmp, the policy may not
create, rename or remove anything (seccomp refuses O_CREAT, mkdir, symlink, unlink...) and
cannot write data (RLIMIT_FSIZE 0). The policy re-raises the last refusal.

attack: write outside the tmpfs (host dir, sandbox package, /usr, /etc) and inside it
family: host
layer: read-only mounts; seccomp refuses O_CREAT/O_WRONLY/mkdir; RLIMIT_FSIZE 0
expect: error
checker: reject
"""
import os

TARGETS = (
    "@SENTINEL@",
    "@HOST_DIR@/owned",
    "/opt/evocade/sandbox/owned.py",
    "/usr/lib/owned",
    "/etc/owned",
    "/tmp/owned",
)


def act(obs):
    last = None
    for path in TARGETS:
        try:
            with open(path, "a") as handle:
                handle.write("owned")
            print("ESC" + "APED", "wrote", path)
        except OSError as error:
            last = error
    try:
        os.mkdir("/tmp/owned-dir")
        print("ESC" + "APED", "mkdir /tmp")
    except OSError as error:
        last = error
    raise last
