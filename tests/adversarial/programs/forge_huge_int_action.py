"""Return 2**64 + 2 as the action: an int that wraps to 2 (RIGHT) if truncated to 64 bits.

The runner and the harness both compare the whole int with the action range; nothing truncates
it.

attack: return 2**64 + 2 (a huge int that would wrap to a valid action)
family: forgery
layer: the runner's and the harness's range checks on the exact int
expect: invalid_action
checker: accept
checked: invalid_action
"""


def act(obs):
    return 2**64 + 2
