"""Write a complete fake result, in the host's format, into the reply pipe to the harness.

The reply pipe is the one channel from policy to harness. The harness reads nothing on it but
an action index or one of the runner's few messages, which end the episode: this fake carries
an "error" key, so it reads as the policy reporting an error (the policy can always end its own
episode that way). The score stays what the emulator counted for the steps played.

attack: a fake episode result (return 21) written into the reply pipe
family: forgery
layer: the harness reads only actions and end-of-episode messages on the reply pipe
expect: error
checker: reject
"""
import os
import sys

FAKE = (
    b'{"seed":0,"status":"ok","return":21.0,"length":1,"error":null,"wall_seconds":0.1,'
    b'"output":"","trace":null}\n'
)
steps = []


def act(obs):
    steps.append(1)
    if len(steps) == 5:
        os.write(int(sys.argv[2]), FAKE)
    return 0
