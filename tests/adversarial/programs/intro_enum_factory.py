"""Build a class with any dunder through the enum machinery, then let copy.copy() run it.

Round two: `enum.EnumType(name, bases, ns, **{"_simple": True})` builds classes whose namespace
may hold any dunder, and copy.copy() of an instance runs a `__reduce_ex__` that writes around
the write guard. The checker rejects calling the enum metaclass (and Enum's functional API);
the restricted runtime refuses the metaclass too. With the checker off there is no guard to get
around: the program runs as plain Python and plays NOOP.

attack: enum.EnumType(..., _simple=True) with __reduce_ex__, then copy.copy()
family: introspection
layer: the checker (metaclass and class-factory rules); the restricted runtime refuses EnumType
expect: ok
checker: reject
score: noop
"""
import copy
import enum


def _reduce(self, protocol):
    return (dict, ())


Forged = enum.EnumType("Forged", (), {"__reduce_ex__": _reduce}, _simple=True)
copy.copy(Forged)


def act(obs):
    return 0
