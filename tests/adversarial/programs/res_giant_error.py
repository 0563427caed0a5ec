"""Raise an exception with a 10 MB message.

The runner trims the traceback to a few thousand characters and the host caps every text field
again when it validates the result.

attack: giant exception message (10 MB)
family: resources
layer: the runner's trimmed traceback; the host's capped result fields
expect: error
checker: accept
checked: error
"""


def act(obs):
    raise ValueError("y" * 10**7)
