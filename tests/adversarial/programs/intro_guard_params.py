"""Shadow RestrictedPython's guard hooks with parameters and module names of the same name.

Restricted code calls `_getattr_(obj, name)`, `_write_(obj)`, `_getitem_`, `_getiter_`... by
name; a parameter called `_getattr_` with the builtin getattr as its default would make the
rewritten code inside the function use it, and the guard would be gone. The checker rejects any
name starting with "_" (and RestrictedPython refuses to compile them). With the checker off
there are no guards to replace: the function is plain Python, and it plays NOOP.

attack: parameters and globals named _getattr_, _write_, _getitem_, _getiter_, _print_
family: introspection
layer: nothing to replace with the checker off; the checker rejects the names
expect: ok
checker: reject
score: noop
"""

_getattr_ = getattr
_write_ = lambda obj: obj  # noqa: E731


def act(obs, _getattr_=getattr, _getitem_=lambda o, k: o[k], _getiter_=iter, _write_=None):
    kind = _getattr_(obs, "__class__")
    return 0 if kind is dict else 0
