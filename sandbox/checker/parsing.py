"""Every conversion between source text and Python AST objects in this process, under one lock.

CPython 3.11 keeps the AST converter's recursion depth in per-interpreter state, shared by all
threads: when a garbage collection during one conversion runs a finaliser and another thread
starts a conversion meanwhile, the first ends with `SystemError: AST constructor recursion
depth mismatch` (python/cpython#106905; a CI run on a loaded machine hit it in the checker).
The engine checks, extracts and mutates programs from several threads at once (proposals run
beside evaluations), so `ast.parse` and `compile()` of a tree go through here. Conversions
take milliseconds; the lock costs nothing measurable.
"""

from __future__ import annotations

import ast
import threading
from types import CodeType

AST_LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    with AST_LOCK:
        return ast.parse(source, filename)


def compile_tree(tree: ast.Module, filename: str, flags: int) -> CodeType:
    with AST_LOCK:
        return compile(tree, filename, "exec", flags=flags, dont_inherit=True)
