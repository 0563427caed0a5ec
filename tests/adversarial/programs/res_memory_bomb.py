"""Grow a list of 80 MB lists without end.

RLIMIT_AS on the policy process turns the allocation that crosses it into a MemoryError, which
the runner reports as `memory`. The cgroup limit around the whole sandbox is the second wall.
Filling three such lists takes a tenth of a second on an idle machine and more than the usual
one-second act() limit on a loaded one, so this program gets 20 s: its outcome is `memory`
whatever the machine's speed.

attack: memory bomb: append lists of 10**7 items forever
family: resources
layer: RLIMIT_AS on the policy process; the sandbox's cgroup memory limit behind it
expect: memory
checker: accept
checked: memory
act-seconds: 20
"""


def act(obs):
    hog = []
    while True:
        hog.append([0] * 10**7)
