"""Flood the output with print(): a hundred thousand lines and one 10 MB string per step.

The runner captures prints in memory up to a cap (Limits.output_bytes) and counts the rest, so
the result stays small and the episode plays on.

attack: output flood with print()
family: resources
layer: the runner's capped print buffer (output_bytes)
expect: ok
checker: accept
checked: ok
score: noop
"""


def act(obs):
    for i in range(100000):
        print("flood", i)
    print("x" * 10**7)
    return 0
