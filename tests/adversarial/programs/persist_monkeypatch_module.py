"""Monkeypatch shared modules (math, random) for a later episode to trip over.

Every episode starts a fresh policy interpreter, so a patch lives only as long as the episode
that made it: the second seed (same sandbox) must see the original math.floor and random.random.
With the checker on, writing to a module is refused at run time (the write guard), an error.

attack: monkeypatch math.floor / random.random for the next episode or program
family: persistence
layer: a fresh policy process per episode (nothing is shared but the pipe)
expect: ok, ok
checker: accept
checked: error, error
seeds: 2
score: noop
"""
import math
import random

if math.floor(2.5) != 2 or random.random() == 0.25:
    raise RuntimeError("a patch from an earlier episode is still in place")

math.floor = lambda value: 99
random.random = lambda: 0.25


def act(obs):
    return 0 if math.floor(1.5) == 99 else 0
