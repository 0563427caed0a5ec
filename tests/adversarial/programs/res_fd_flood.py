"""Flood the raw file descriptors 1 and 2 with os.write, 10 MB a step.

The runner points fd 1 and 2 at /dev/null before any policy code runs, so nothing reaches the
harness's result stream or the host; the episode plays on. The checker rejects `import os`.

attack: output flood on fd 1 and 2 with os.write
family: resources
layer: the runner's fd 1 and 2 are /dev/null
expect: ok
checker: reject
score: noop
"""
import os


def act(obs):
    block = b"y" * (1 << 20)
    for _ in range(5):
        os.write(1, block)
        os.write(2, block)
    return 0
