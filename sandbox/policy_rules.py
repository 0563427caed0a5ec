"""What a policy module may use: the one list that the static checker and the sandbox share.

The checker (`sandbox.checker`, on the host) turns these rules into diagnostics an LLM can act on;
the restricted runtime (`sandbox.runtime.restricted_env`, inside the sandbox) enforces the same
rules while the policy runs. Keeping them in one place is what makes "the checker accepted it"
mean "the runtime will run it". The runtime imports this module inside the sandbox image, so it
imports nothing outside the standard library.

Neither layer is the wall (docs/DESIGN.md §4): the process split and the OS sandbox are. These rules
are there so that the usual ways out of Python fail early, with a message that says what to do
instead, rather than as a seccomp kill that teaches the LLM nothing.
"""

from __future__ import annotations

import importlib
import string
import sys
from collections.abc import Mapping
from types import ModuleType

# ---------------------------------------------------------------------------------------------
# Modules
#
# Allowed: pure computation on numbers and containers, which is all a policy needs to turn an
# observation dict into an action.
#   math, fractions             arithmetic (fractions for exact ratios; decimal left out: nothing
#                               in pixel maths needs it and it adds a C module's worth of surface)
#   random                      exploration and tie-breaking (module state is per process, and each
#                               episode starts in a fresh process)
#   statistics                  mean/median/stdev over recent positions
#   collections, heapq, bisect  deque histories, Counter, defaultdict, namedtuple, priority queues
#   itertools, functools        combinatorics, reduce, partial, lru_cache (see the blocked
#                               attributes below)
#   operator                    itemgetter for sorting object lists (attrgetter and
#                               methodcaller blocked)
#   copy                        copying the policy's own state
#   enum                        named action constants (`class Action(IntEnum)`)
#   typing                      LLM-written code routinely starts with `from typing import List`;
#                               rejecting that would waste an iteration on a cosmetic fix
#   __future__                  `from __future__ import annotations` is harmless and common
#
# Not allowed, and why:
#   os, sys, io, pathlib, shutil, subprocess, socket, signal, ...  files, processes, the network,
#       the interpreter's own state: nothing a policy needs, everything an escape needs
#   builtins, importlib, types, inspect, gc, ctypes, marshal, pickle, code, codeop
#       each can get at (or build) code objects, frames, arbitrary modules or raw memory:
#       `types.FunctionType(code, globals)`, `gc.get_objects()`, `inspect.currentframe()`,
#       `pickle.loads(b"cos\nsystem\n...")` and `ctypes` are textbook sandbox escapes
#   threading, _thread, multiprocessing, asyncio, concurrent, atexit
#       code that keeps running after `act` returns escapes the per-call time limit
#   weakref   finalizers run policy code at arbitrary later moments
#   time, datetime   wall-clock reads make policies nondeterministic and enable timing games;
#       the observation carries everything about the game that a policy may react to
#   string    `string.Formatter` walks attributes by name (`"{0.__class__}"`), bypassing the
#       attribute guard; the constants in it are not worth that
#   re        nothing to parse in an observation dict, and catastrophic backtracking is an easy way
#       to burn the whole time budget inside one C call
#   dataclasses, abc   class factories that bypass the checks on class bodies (make_dataclass
#       takes an arbitrary namespace); plain classes with `__init__` do the same job
#   json, decimal, numbers, cmath, ...  harmless but useless here; the list is kept short on
#       purpose, and a new entry needs a reason
# ---------------------------------------------------------------------------------------------
ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        "__future__",
        "bisect",
        "collections",
        "copy",
        "enum",
        "fractions",
        "functools",
        "heapq",
        "itertools",
        "math",
        "operator",
        "random",
        "statistics",
        "typing",
    }
)

# Public attributes of allowed modules that still give a way around the guards, with the reason
# and what to use instead. Both layers also refuse any attribute whose value is a module outside
# ALLOWED_MODULES (`typing.sys`, `statistics.sys`, `enum.bltns` is the builtins module), and any
# attribute whose value is a metaclass (`enum.EnumType`, `typing.ABCMeta`, `typing.NamedTupleMeta`):
# calling one builds a class from a dict, with any dunder method in it.
FORBIDDEN_MODULE_ATTRIBUTES: Mapping[str, Mapping[str, str]] = {
    "operator": {
        "attrgetter": (
            "it looks attributes up by a string name inside C code, around the attribute guard; "
            "use a lambda such as `lambda o: o['x']` (objects in obs are dicts) or "
            "operator.itemgetter('x')"
        ),
        "methodcaller": (
            "it calls methods by a string name inside C code, around the attribute guard; "
            "call the method directly"
        ),
    },
    "functools": {
        "update_wrapper": (
            "it copies attributes by name, dunder attributes included; "
            "decorators in a policy do not need it"
        ),
        "wraps": (
            "it copies attributes by name, dunder attributes included; "
            "decorators in a policy do not need it"
        ),
        "singledispatch": (
            "it evaluates annotation strings with eval(); dispatch with isinstance() instead"
        ),
        "singledispatchmethod": (
            "it evaluates annotation strings with eval(); dispatch with isinstance() instead"
        ),
    },
    "typing": {
        "get_type_hints": (
            "it evaluates annotation strings with eval(); annotations are for reading only"
        ),
        "get_origin": (
            "it returns the class behind a typing alias (`typing.Type` gives `type`, which "
            "policies may not use); test values with isinstance() instead"
        ),
    },
    "enum": {
        "global_enum": (
            "it writes the members into the namespace of a module named by a string; "
            "refer to members as Action.UP"
        ),
    },
    "copy": {
        "dispatch_table": (
            "it is the registry of how each type is copied: an entry in it makes copy.copy() "
            "call any function and set attributes on whatever that returns (a module, say), "
            "around the write guard; copy.copy() and copy.deepcopy() work on your own objects "
            "without it"
        ),
    },
}

# Attribute names the checker refuses on any object, with the reason. (Names starting with "_"
# and RestrictedPython's frame/code attributes such as `gi_frame` are refused everywhere too.)
# The runtime refuses what makes them dangerous: `mro` of a metaclass, the unbound `type.mro`.
FORBIDDEN_ATTRIBUTES: Mapping[str, str] = {
    "mro": (
        "it lists a class's bases, and a metaclass's list holds `type` itself "
        "(`enum.EnumType.mro(enum.EnumType)[1]`), which builds classes with any dunder method; "
        "use isinstance() or issubclass() to ask about a class"
    ),
}

# Methods a policy class may define although their names start with "_": exactly what
# RestrictedPython allows (its transformer's ALLOWED_FUNC_NAMES; a test keeps the two equal).
# `__init__` is in virtually every LLM-written class; the comparisons make instances sortable.
# Any other dunder method (`__repr__`, `__getattr__`, `__del__`, ...) changes how Python itself
# treats the object, which the guards cannot follow.
ALLOWED_DUNDER_METHODS: frozenset[str] = frozenset(
    {"__init__", "__contains__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"}
)

# A policy is one module of a few hundred lines; 64 KiB is several times the largest useful one,
# and the cap bounds what the checker and RestrictedPython's transformer have to chew on.
MAX_SOURCE_BYTES = 64 * 1024

_OBS_HINT = "compute the action from the obs dict instead"

# Builtins that a policy may not use, with the reason and what to do instead. The restricted
# runtime leaves every one of them out of the policy's builtins, so a use that slips past the
# checker fails with NameError.
FORBIDDEN_BUILTINS: Mapping[str, str] = {
    "eval": "it runs code that no check has seen; write the expression directly",
    "exec": "it runs code that no check has seen; write the statements directly",
    "compile": "it makes code objects that no check has seen; write the code directly",
    "__import__": "it imports any module by name; use an import statement of an allowed module",
    "open": f"a policy has no files to read or write; {_OBS_HINT}",
    "input": f"a policy has no console to read from; {_OBS_HINT}",
    "breakpoint": "there is no debugger in the sandbox; use print() to trace values",
    "help": "there is no interactive session in the sandbox; remove the call",
    "exit": "a policy must not stop the interpreter; return an action from act()",
    "quit": "a policy must not stop the interpreter; return an action from act()",
    "copyright": "it is an interactive-session helper; remove it",
    "credits": "it is an interactive-session helper; remove it",
    "license": "it is an interactive-session helper; remove it",
    "globals": (
        "it exposes the module namespace with the sandbox's guards in it; "
        "use `global name` in a function to update module-level state"
    ),
    "locals": "it exposes namespaces to introspection; use the variables directly",
    "vars": "it exposes an object's __dict__; use the attributes or dict keys directly",
    "dir": "introspection is not available; use the attributes or dict keys you know",
    "memoryview": "raw buffer access is not available; use lists",
    "type": (
        "it reaches class internals and can build classes from a dict; "
        "use isinstance(x, int) to test a type and a class statement to make one"
    ),
    "super": (
        "it works through class internals; avoid inheritance, or call the base class "
        "explicitly, e.g. Base.method(self)"
    ),
}

# The builtins that take an attribute name as a string. A policy may use them only with a
# string literal name that does not start with "_".
ATTRIBUTE_BUILTINS: frozenset[str] = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def allowed_modules_text() -> str:
    """The allowlist as the checker's messages spell it (no `__future__`: that one is a given)."""
    return ", ".join(sorted(ALLOWED_MODULES - {"__future__"}))


def module_attribute_problem(module: ModuleType, name: str) -> str | None:
    """Why a policy may not use `module.name`, or None when it may.

    Used by the checker (for `from m import name` and `m.name`) and by the runtime's attribute
    guard and import hook, so both layers refuse exactly the same things. Names starting with
    "_" are refused elsewhere (they never reach here from the checker; the runtime refuses them
    before calling this).
    """
    module_name = module.__name__
    reason = FORBIDDEN_MODULE_ATTRIBUTES.get(module_name, {}).get(name)
    if reason is not None:
        return f"{module_name}.{name} is not allowed: {reason}"
    value = getattr(module, name, None)
    if isinstance(value, ModuleType) and value.__name__ not in ALLOWED_MODULES:
        return (
            f"{module_name}.{name} is the module {value.__name__!r}, which policies may not use; "
            f"allowed modules: {allowed_modules_text()}"
        )
    if is_metaclass(value):
        return f"{module_name}.{name} is not allowed: {METACLASS_REASON}"
    return None


METACLASS_REASON = (
    "it is a metaclass, and calling a metaclass builds a class from a dict that no check sees, "
    "with any dunder method in it; define classes with a class statement (an Enum or IntEnum "
    "base needs no metaclass)"
)


def is_metaclass(value: object) -> bool:
    """Whether `value` is a class whose instances are classes (`type` and its subclasses)."""
    return isinstance(value, type) and issubclass(value, type)


def load_allowed_module(name: str) -> ModuleType:
    """Import a module from ALLOWED_MODULES (callers check membership first)."""
    module = sys.modules.get(name)
    return module if module is not None else importlib.import_module(name)


def forbidden_objects() -> dict[int, str]:
    """`id(obj) -> message` for every object named in FORBIDDEN_MODULE_ATTRIBUTES.

    The runtime's attribute guard checks values by identity, so a forbidden function stays
    forbidden however the policy reaches it (say, re-exported by another allowed module).
    """
    found: dict[int, str] = {}
    for module_name, names in FORBIDDEN_MODULE_ATTRIBUTES.items():
        module = load_allowed_module(module_name)
        for name in names:
            value = getattr(module, name, None)
            if value is not None:
                found[id(value)] = f"{module_name}.{name} is not allowed: {names[name]}"
    return found


_FORMATTER = string.Formatter()


def template_looks_up_fields(template: str) -> bool:
    """Whether a str.format template reads attributes or items (`{0.x}`, `{p[1]}`), nested
    format specs (`{0:{1.x}}`) included. Raises ValueError for a malformed template.

    str.format does those lookups in C, around the attribute guard: `"{0.__class__}".format(x)`
    is the classic way past it. `string.Formatter.parse` is the same parser str.format uses.
    """
    for _literal, field, spec, _conversion in _FORMATTER.parse(template):
        if field is not None and ("." in field or "[" in field):
            return True
        if spec and template_looks_up_fields(spec):
            return True
    return False
