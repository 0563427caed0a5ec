"""Queue thousands of replies ahead, then sleep: the harness keeps sending observations.

Each queued "0" answers one step, so the harness goes on playing and writing observations that
the sleeping policy never reads. Once the pipe was full the harness blocked in write(), with no
deadline: before the fix the worker hung until the host's wall-clock budget ran out. Now the
harness writes with a deadline and reports that the policy stopped reading (timeout). The
score is what the emulator gave for the NOOPs actually played.

attack: pipelined replies then sleep, so the harness's blocking write fills the pipe
family: process-split
layer: the harness writes observations with a deadline (timeout) [fixed here]
expect: timeout
checker: reject
max-steps: 1500
max-seconds: 5
"""
import os
import sys
import time


def act(obs):
    os.write(int(sys.argv[2]), b"0\n" * 20000)
    time.sleep(3600)
    return 0
