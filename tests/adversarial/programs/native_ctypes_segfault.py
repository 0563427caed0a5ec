"""Crash the policy interpreter from native code: read address 0 through ctypes.

The policy process dies of SIGSEGV. What matters is that only it dies: the harness, a separate
process, reports the episode as crashed (with the signal) and the score it had counted so far,
and the sandbox goes on. The checker rejects `import ctypes`.

attack: segfault the policy process with ctypes.string_at(0)
family: native
layer: process split: only the policy process dies; the harness reports it
expect: crashed
checker: reject
"""
import ctypes


def act(obs):
    ctypes.string_at(0)
    return 0
