"""Move onto another sandbox's CPU with sched_setaffinity.

Round two found bwrap sandboxes pinned only by a request to the harness, which a policy could
undo: it moved itself next to another worker. Now each sandbox's cgroup has a cpuset with its
one CPU (docker: --cpuset-cpus), and the allowlist refuses sched_setaffinity. The policy
raises the refusal, and says so if it ever saw more than one CPU.

attack: sched_setaffinity(0, every CPU) to leave its pinned core
family: host
layer: cpuset cgroup (bwrap, docker) and the seccomp allowlist [fixed here]
expect: error
checker: reject
"""
import os


def act(obs):
    if len(os.sched_getaffinity(0)) > 1:
        print("ESC" + "APED", "may run on", sorted(os.sched_getaffinity(0)))
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    print("ESC" + "APED", "moved to", sorted(os.sched_getaffinity(0)))
    return 0
