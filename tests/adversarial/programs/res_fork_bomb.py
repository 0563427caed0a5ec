"""Fork without end.

seccomp refuses fork/vfork/clone (EPERM) and RLIMIT_NPROC is 0; the sandbox's pids cgroup is
the third wall. The checker rejects `import os`.

attack: fork bomb: while True: os.fork()
family: resources
layer: seccomp refuses fork/clone (EPERM); RLIMIT_NPROC 0; pids cgroup
expect: error
checker: reject
"""
import os


def act(obs):
    while True:
        os.fork()
