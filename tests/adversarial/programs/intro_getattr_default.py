"""Smuggle `getattr` in as a parameter default, past the rule that only allows it by name.

Round two: `def walk(obj, get=getattr)` reached the runner's globals through a bound getattr
that the checker, looking at call shapes only, never saw. The checker now treats builtins it
restricts as values wherever they are not the policy's own certain binding. With the checker
off it is plain Python: the walk finds the module's globals and plays NOOP.

attack: getattr bound as a parameter default, then a frame/globals walk
family: introspection
layer: the checker (restricted builtins used as values)
expect: ok
checker: reject
score: noop
"""


def walk(obj, get=getattr):
    return get(obj, "__globals__", {})


def act(obs):
    walk(act)
    return 0
