"""Get `type` through typing.get_origin(typing.Type), reaching it with a literal getattr.

`typing.get_origin(typing.Type)` is `type` itself. Fetched as `getattr(typing, "get_origin")`
it slips past the checker, which judges getattr only by its literal name. The runtime guard
checks module attributes by value (typing.get_origin is on the blocked list), so with the
checker on the episode ends in an error. With it off the policy makes a class that fakes being
an int; the runner judges the returned object by its real type: invalid_action.

attack: typing.get_origin(typing.Type) gives type(); fetched via getattr(typing, 'get_origin')
family: introspection
layer: the runner checks the action's real type (invalid_action) [fixed here]
expect: invalid_action
checker: accept
checked: error
"""
import typing


def act(obs):
    origin = getattr(typing, "get_origin")
    maker = origin(typing.Type)
    Fake = maker("Fake", (), {})
    return Fake()
