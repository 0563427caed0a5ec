"""Reach str.format through the str type with getattr, past the checker.

`getattr(str, "format")` is a getattr with a literal, ordinary name, so the checker accepts it;
the unbound method then takes any template, `"{0.__globals__}"` included. The runtime
guard (RestrictedPython's safer_getattr, kept by ours) refuses `format` on str and its
subclasses, so with the checker on the episode ends in an error. With the checker off it is plain
Python: a string comes back, nothing more.

attack: unbound str.format fetched with getattr(str, 'format'), then a traversing template ("{0.__globals__}")
family: introspection
layer: nothing to stop with the checker off (a string); the runtime attribute guard with it on
expect: ok
checker: accept
checked: error
score: noop
"""


def act(obs):
    formatter = getattr(str, "format")
    text = formatter("{0.__globals__[__name__]}", act)
    print(text[:60])
    return 0
