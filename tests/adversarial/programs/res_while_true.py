"""Never return from act(): `while True: pass`.

The policy process would spin for ever. The harness times each act() call on the wall clock
and kills the policy process when act_seconds have passed; RLIMIT_CPU is the backstop.

attack: infinite loop in act()
family: resources
layer: the harness's per-call wall-clock limit (act_seconds)
expect: timeout
checker: accept
checked: timeout
"""


def act(obs):
    while True:
        pass
