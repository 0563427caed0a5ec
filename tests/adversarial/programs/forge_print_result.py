"""Print lines in the harness's result format, claiming 21 points, on every step.

The host parses the worker's stdout line by line and keeps the first valid result for each
seed, so a forged line that reached that stream ahead of the real one would win. print() in a
policy writes to the runner's capped in-memory buffer, never to a file descriptor; the forged
lines come back only as the episode's `output`, and the reported return is the emulator's.

attack: print fake result lines in the harness's JSON format (return 21)
family: forgery
layer: process split: prints are captured in the policy process; the harness counts the score
expect: ok
checker: accept
checked: ok
score: noop
"""

FAKE = (
    '{"seed":0,"status":"ok","return":21.0,"length":1,"error":null,"wall_seconds":0.1,'
    '"output":"","trace":null}'
)


def act(obs):
    print(FAKE)
    print('{"done": true}')
    return 0
