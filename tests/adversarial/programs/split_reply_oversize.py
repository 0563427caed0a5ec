"""Score, then end the episode with a 3 MB message written straight to the reply pipe.

The runner caps the prints it hands over, but it is the policy's own process: with the checker
off, a policy can write its own final message, of any size, to its end of the pipe. Round two
made an `ok` episode emit ~3 MB this way, and with twelve episodes in one worker the later seeds
came back "crashed, sandbox died": one policy sabotaged its siblings' results. Now the harness
counts what each policy sends and cuts it (`sent a message of more than N bytes`), and every
episode has a sandbox and a report of its own: both seeds end the same way, each on its own.

attack: a 3 MB final message on the reply pipe, past the runner's own cap
family: forgery
layer: the harness's own cap on what a policy sends; a sandbox per episode [fixed here]
expect: crashed, crashed
checker: reject
seeds: 2
"""
import os
import sys

REPLY_FD = int(sys.argv[2])  # the runner's argv names its two pipe ends

steps = 0


def act(obs):
    global steps
    steps += 1
    if steps == 20:
        os.write(REPLY_FD, b'{"end": true, "output": "' + b"x" * 3_000_000 + b'"}\n')
    return 0
