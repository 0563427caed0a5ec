"""Leave a marker in /tmp for a later episode or a later evaluation to find.

Each sandbox gets a fresh tmpfs, but the seeds of one worker share it, and so do the harness
and the policy. The policy may not create anything there (seccomp refuses O_CREAT, mkdir,
symlink, mknod...), so neither the next episode (seed 1, same sandbox) nor the second
evaluation finds a marker. A policy that finds one raises. Before the fix an empty file or a
directory could be created, and its name carried data from one episode to the next.

attack: leave a marker file/directory in /tmp for the next episode or evaluation
family: persistence
layer: seccomp refuses creating files, directories and links [fixed here]; a fresh tmpfs per sandbox
expect: ok, ok
checker: reject
seeds: 2
runs: 2
score: noop
"""
import os

MARKERS = ("/tmp/evocade-marker", "/tmp/evocade-marker-dir", "/tmp/evocade-marker-link")

for marker in MARKERS:
    if os.path.lexists(marker):
        raise RuntimeError(f"found {marker} left by an earlier episode")
for make in (
    lambda: open(MARKERS[0], "w").close(),
    lambda: os.mkdir(MARKERS[1]),
    lambda: os.symlink("/", MARKERS[2]),
):
    try:
        make()
    except OSError:
        pass


def act(obs):
    return 0
