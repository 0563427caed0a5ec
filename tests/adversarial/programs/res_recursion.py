"""Recurse without end in Python code.

Python's recursion limit raises RecursionError; the episode ends in an error with the trace.

attack: unbounded Python recursion
family: resources
layer: Python's recursion limit (RecursionError)
expect: error
checker: accept
checked: error
"""


def deeper(n):
    return deeper(n + 1) + 1


def act(obs):
    return deeper(0)
