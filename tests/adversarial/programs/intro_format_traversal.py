"""Traverse attributes inside str.format / format_map templates, literal and computed.

str.format looks up `{0.__class__.__mro__}` in C, where no attribute guard can see it: the
classic way past RestrictedPython's `_getattr_`. The checker rejects templates that look fields
up and `.format` on any non-literal string (string-format-attribute); the runtime refuses them
too. With the checker off this is plain Python and reads only what Python may read anyway:
the episode is ok, and the strings it prints carry nothing from the host.

attack: str.format / format_map attribute traversal ('{0.__class__...}'), literal and computed
family: introspection
layer: nothing to stop: the strings hold nothing secret; the checker rejects it
expect: ok
checker: reject
score: noop
"""


def act(obs):
    print("{0.__class__.__mro__}".format(obs))
    print("{o.__class__.__init__}".format_map({"o": obs}))
    template = "{0." + "__globals__[__builtins__]}"
    print(template.format(act)[:80])
    return 0
