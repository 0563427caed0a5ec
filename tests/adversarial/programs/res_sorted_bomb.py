"""Sort a billion-element sequence: sorted() first materialises it as a list.

A list of 10**9 references needs 8 GB; the policy process's address-space limit (RLIMIT_AS)
makes the allocation fail at once with MemoryError, long before the sandbox's cgroup limit or
the host would notice. (A range, whose length sorted() knows up front: one allocation, refused
at once. A sequence grown one element at a time would reach the limit only after seconds on a
loaded machine, and end as a timeout instead: the outcome must not depend on timing.)

attack: huge sorted(): sorted(range(10**9, 0, -1))
family: resources
layer: RLIMIT_AS on the policy process (MemoryError)
expect: memory
checker: accept
checked: memory
"""
def act(obs):
    return sorted(range(10**9, 0, -1))[0]
