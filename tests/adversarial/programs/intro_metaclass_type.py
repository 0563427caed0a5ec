"""Get `type` back through a metaclass's mro() and build a class that claims to be int.

`type` is a forbidden builtin, but `enum.EnumType.mro(enum.EnumType)` is `[EnumType, type,
object]`: with `type` a policy builds classes with any dunder method, here one whose instances
claim `__class__ = int`, so that isinstance(x, int) holds for something that is not an int.
Before the fix the checker accepted this and the runner, asking isinstance() and then
int.__int__(), died on it (status crashed). Now the checker rejects `.mro`
(attribute-not-allowed), the runtime guard refuses `type.mro` unbound, and the runner judges a
return value by its real type: with the checker off the action is simply invalid.

attack: type() rebuilt from enum.EnumType.mro(); an object faking __class__ = int returned
family: introspection
layer: the runner checks the action's real type (invalid_action) [fixed here]
expect: invalid_action
checker: reject
"""
import enum


def act(obs):
    maker = enum.EnumType.mro(enum.EnumType)[1]
    Fake = maker("Fake", (), {"__class__": int, "__index__": lambda self: 2})
    return Fake()
