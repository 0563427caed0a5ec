"""Burn CPU inside one C call: 10**10**8 never returns to the interpreter.

No Python-level check (a tracer, a step counter) can interrupt a single long C call. The harness
times every act() call from outside, on the wall clock, and kills the policy process after
act_seconds. The checker has nothing to object to: this is legal Python.

attack: CPU bomb in C: 10**10**8
family: resources
layer: the harness's per-call wall-clock limit (act_seconds) kills the policy process
expect: timeout
checker: accept
checked: timeout
"""


def act(obs):
    return 10**10**8 % 6
