"""Grow a list of 80 MB lists without end.

RLIMIT_AS on the policy process turns the allocation that crosses it into a MemoryError, which
the runner reports as `memory`. The cgroup limit around the whole sandbox is the second wall.

attack: memory bomb: append lists of 10**7 items forever
family: resources
layer: RLIMIT_AS on the policy process; the sandbox's cgroup memory limit behind it
expect: memory
checker: accept
checked: memory
"""


def act(obs):
    hog = []
    while True:
        hog.append([0] * 10**7)
