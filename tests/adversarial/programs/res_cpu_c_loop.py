"""Burn CPU in a C loop over an astronomically long iterator.

`max(itertools.product(range(10), repeat=14))` iterates 10**14 tuples without ever running
Python bytecode. Like the big power, only a limit enforced from outside the process stops it.

attack: CPU bomb in C: max(itertools.product(range(10), repeat=14))
family: resources
layer: the harness's per-call wall-clock limit (act_seconds)
expect: timeout
checker: accept
checked: timeout
"""
import itertools


def act(obs):
    return max(itertools.product(range(10), repeat=14))[0] % 6
