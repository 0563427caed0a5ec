"""Return a 10 MB string as the action.

The runner refuses it as an action and describes it with a repr capped at 200 characters, so
the reply, the error and the stored result all stay small. (10 MB, not more: building it must
stay well inside the one-second act() budget on a loaded machine.)

attack: giant return value ('x' * 10**7)
family: resources
layer: the runner's action check and capped repr
expect: invalid_action
checker: accept
checked: invalid_action
"""


def act(obs):
    return "x" * 10**7
