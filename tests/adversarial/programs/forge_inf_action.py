"""Return infinity as the action, after a few honest NOOPs.

The episode ends at that step with invalid_action, keeping the score the emulator gave for the
steps before it.

attack: return float('inf') as the action (after 10 NOOPs)
family: forgery
layer: the runner's action check (ints only), the harness's range check
expect: invalid_action
checker: accept
checked: invalid_action
"""
steps = [0]


def act(obs):
    steps[0] += 1
    return 0 if steps[0] <= 10 else float("inf")
