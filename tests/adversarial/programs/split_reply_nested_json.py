"""Send the harness a reply it cannot parse without overflowing: a line of a million '['.

json.loads raises RecursionError, not ValueError, on deep nesting; before the fix that escaped
the harness's parser and killed the harness, so this episode and every later one of the worker
were lost (`crashed`, "the sandbox died"). Now the harness reads it as a broken reply: this
episode is crashed and the next one plays normally. The policy attacks only when its seeded
`random` says so, which it does on seed 0 and not on seed 1.

attack: a reply of a million nested '[' (RecursionError in the harness's json.loads)
family: process-split
layer: the harness's reply parser treats any unparsable reply as a protocol break [fixed here]
expect: crashed, ok
checker: reject
seeds: 2
"""
import os
import random
import sys

attack = random.random() > 0.5  # seed 0: 0.84, seed 1: 0.13


def act(obs):
    if attack:
        os.write(int(sys.argv[2]), b"[" * 1_000_000 + b"\n")
        return 0
    return 0
