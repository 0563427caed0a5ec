"""Sleep instead of computing: an hour in time.sleep, which uses no CPU at all.

A CPU-time limit alone would never fire. The harness's wall-clock limit on each act() call
does. The checker rejects `import time`.

attack: time.sleep(3600) in act()
family: resources
layer: the harness's per-call wall-clock limit (act_seconds)
expect: timeout
checker: reject
"""
import time


def act(obs):
    time.sleep(3600)
    return 0
