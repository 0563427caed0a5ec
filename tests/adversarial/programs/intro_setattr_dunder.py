"""Write dunder attributes with setattr: patch int, the act function's code, a class's lookup.

`setattr(int, "__int__", ...)` would change how the runner reads every action;
`setattr(act, "__code__", ...)` swaps code under a checked name; `setattr(cls, "__getattr__",
...)` hooks attribute lookups. The checker rejects setattr with names starting with "_"; the
runtime guard refuses them too. With the checker off, Python itself refuses to patch a
built-in type (TypeError), so the episode ends in an error before any trick lands.

attack: setattr with dunder names on int, functions and classes
family: introspection
layer: CPython refuses to patch built-in types (TypeError)
expect: error
checker: reject
"""


class Policy:
    pass


def other(obs):
    return 2


def act(obs):
    setattr(Policy, "__getattr__", lambda self, name: 0)
    setattr(other, "__defaults__", (obs,))
    setattr(int, "__int__", lambda self: 2)
    print("ESC" + "APED", "patched int")
    return 0
