"""Start threads that keep burning CPU after act() has returned.

A thread would escape the per-call limit and run between calls. seccomp refuses clone, so
Python cannot start a thread at all. The checker rejects `import threading`.

attack: background threads (threading.Thread) spinning after act() returns
family: resources
layer: seccomp refuses clone (thread creation fails)
expect: error
checker: reject
"""
import threading


def spin():
    while True:
        pass


def act(obs):
    for _ in range(8):
        threading.Thread(target=spin, daemon=True).start()
    return 0
