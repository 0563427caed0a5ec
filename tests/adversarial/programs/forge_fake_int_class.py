"""Return an object whose class claims `__class__ = int`, so isinstance(x, int) is True.

Before the fix the runner asked isinstance() and then called int.__int__() on it, outside the
policy's try: the runner died and the episode was reported `crashed` (a harness-side failure)
instead of the policy's own invalid action. The runner now judges the real type.

attack: an object faking __class__ = int returned as the action
family: forgery
layer: the runner judges the action by its real type [fixed here]
expect: invalid_action
checker: reject
"""


class Fake:
    __class__ = int

    def __index__(self):
        return 2


def act(obs):
    return Fake()
