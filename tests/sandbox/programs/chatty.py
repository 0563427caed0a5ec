"""Prints every step and keeps module state: output capture and per-episode freshness."""

steps = 0


def act(obs):
    global steps
    steps += 1
    print("step", steps)
    return 0
