"""Flood the output with print(): two thousand lines and one 1 MB string per step.

The runner captures prints in memory up to a cap (Limits.output_bytes) and counts the rest, and
the harness caps what it takes from the runner again, so the result stays small and the episode
plays on. (Each step's flood is a hundred times the cap, yet cheap enough to stay well inside
the one-second act() budget on a loaded machine: the outcome must not depend on timing.)

attack: output flood with print()
family: resources
layer: the runner's capped print buffer (output_bytes)
expect: ok
checker: accept
checked: ok
score: noop
"""


def act(obs):
    for i in range(2000):
        print("flood", i)
    print("x" * 10**6)
    return 0
