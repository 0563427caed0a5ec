"""Close the reply pipe and go to sleep without exiting.

The harness saw end-of-file and then waited for the process to exit, forever: before the fix
the worker hung until the host's wall-clock budget for the whole worker (minutes) ran out and
every episode in it was reported as a timeout. Now the harness gives a process that closed its
pipe a moment to exit, then kills it and reports the episode crashed, and goes on with the next.

attack: close the reply pipe, keep running (harness waited forever in wait4)
family: process-split
layer: the harness kills a policy that breaks the protocol [fixed here]
expect: crashed, crashed
checker: reject
seeds: 2
max-seconds: 5
"""
import os
import sys
import time


def act(obs):
    os.close(int(sys.argv[2]))
    time.sleep(3600)
    return 0
