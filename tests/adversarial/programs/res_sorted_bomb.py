"""Sort a billion-element sequence: sorted() first materialises it as a list.

A list of 10**9 references needs 8 GB; the policy process's address-space limit (RLIMIT_AS)
makes the allocation fail at once with MemoryError, long before the sandbox's cgroup limit or
the host would notice.

attack: huge sorted(): sorted(islice(cycle(...), 10**9))
family: resources
layer: RLIMIT_AS on the policy process (MemoryError)
expect: memory
checker: accept
checked: memory
"""
import itertools


def act(obs):
    return sorted(itertools.islice(itertools.cycle([3, 1, 2]), 10**9))[0]
