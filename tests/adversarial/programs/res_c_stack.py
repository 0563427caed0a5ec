"""Overflow the C stack: lift the recursion limit, then repr() a list nested 200,000 deep.

repr of nested lists recurses in C; with the recursion limit lifted nothing stops it before the
stack runs out and the policy interpreter dies of SIGSEGV. Only the policy process dies: the
harness reports the episode as crashed. The checker rejects `import sys`. It all happens while
the module loads, whose budget (15 s) leaves no doubt on a loaded machine about which limit is
hit first: the stack, not a clock.

attack: C stack overflow: sys.setrecursionlimit(10**7), repr of a 200,000-deep list
family: resources
layer: process split: the policy process dies alone (SIGSEGV); the harness reports it
expect: crashed
checker: reject
"""
import sys

sys.setrecursionlimit(10**7)
nested = []
for _ in range(2 * 10**5):
    nested = [nested]
DEPTH = len(repr(nested)) % 6


def act(obs):
    return DEPTH
