"""Flood the reply pipe with megabytes that never end a line, then sleep.

The harness caps a reply at 1 MB; past it the reply is a protocol break. Before the fix the
harness then waited for the process to exit, which it never did (the same hang as closing the
pipe). Now it kills the policy and reports the episode crashed at once.

attack: reply flood: 2 MB without a newline, then sleep
family: process-split
layer: the harness's reply size cap; it kills a policy that breaks the protocol [fixed here]
expect: crashed
checker: reject
max-seconds: 5
"""
import os
import sys
import time


def act(obs):
    fd = int(sys.argv[2])
    block = b"7" * 65536
    for _ in range(40):
        os.write(fd, block)
    time.sleep(3600)
    return 0
