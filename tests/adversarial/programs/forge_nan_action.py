"""Return NaN as the action.

NaN compares false with everything, so a range check written as `not (a < 0 or a >= n)` would
let it through. The runner accepts only ints (by their real type); the harness checks the range
again.

attack: return float('nan') as the action
family: forgery
layer: the runner's action check (ints only), the harness's range check
expect: invalid_action
checker: accept
checked: invalid_action
"""


def act(obs):
    return float("nan")
