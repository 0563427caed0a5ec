"""The checker holes of issue #11 (item 6), each rejected with a diagnostic an LLM can act on:
class factories (metaclasses, Enum's functional API), the copy module's dispatch table, and
getattr & co. (or any forbidden builtin) reached as a value rather than called directly."""

from __future__ import annotations

import pytest

from sandbox.checker import check_source, format_report

ACT = "\ndef act(obs):\n    return 0\n"


def findings(source: str) -> list[tuple[str, int, int]]:
    return [(d.rule, d.line, d.column) for d in check_source(source).diagnostics]


def first_message(source: str, rule: str) -> str:
    report = check_source(source)
    matching = [d for d in report.diagnostics if d.rule == rule]
    assert matching, format_report(report)
    return matching[0].message


# -- class factories ------------------------------------------------------------------------------

ENUMTYPE_SIMPLE = """\
import enum


def act(obs):
    maker = enum.EnumType("C", (), {"__class__": int}, **{"_simple": True})
    return 0
"""

FUNCTIONAL_COPY = """\
import copy
import enum
import math


def act(obs):
    forged = lambda self, protocol: (lambda: math, (), ({"pi": 3}, None))
    X = enum.Enum("X", [("A", 1), ("__copy__", None), ("__reduce_ex__", forged)])
    copy.copy(X.A)
    return 0
"""


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        pytest.param(ENUMTYPE_SIMPLE, 5, 18, "enum.EnumType is not allowed", id="enumtype-call"),
        pytest.param(
            "import enum\nmaker = enum.EnumMeta" + ACT, 2, 14, "enum.EnumMeta", id="enummeta-alias"
        ),
        pytest.param(
            "from enum import EnumType" + ACT, 1, 1, "enum.EnumType", id="from-enum-import"
        ),
        pytest.param(
            "import typing\nC = typing.ABCMeta('C', (), {})" + ACT,
            2,
            12,
            "typing.ABCMeta",
            id="typing-abcmeta",
        ),
        pytest.param(
            "from typing import NamedTupleMeta" + ACT, 1, 1, "NamedTupleMeta", id="namedtuplemeta"
        ),
    ],
)
def test_checker_rejects_metaclasses(source: str, line: int, column: int, fragment: str) -> None:
    assert ("module-attribute-not-allowed", line, column) in findings(source)
    message = first_message(source, "module-attribute-not-allowed")
    assert fragment in message
    assert "metaclass" in message and "class statement" in message


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(FUNCTIONAL_COPY, id="functional-api-forged-reduce"),
        pytest.param("import enum\nX = enum.Enum('X', 'A B')" + ACT, id="enum-module-attribute"),
        pytest.param(
            "from enum import IntEnum as Base\nX = Base('X', names={'A': 1})" + ACT,
            id="imported-alias-names-keyword",
        ),
        pytest.param("import enum\nE = enum.Flag\nX = E('X', ['A'])" + ACT, id="assigned-alias"),
        pytest.param(
            "from enum import Enum\nclass Base(Enum):\n    pass\nclass Sub(Base):\n    pass\n"
            "X = Sub('X', [('A', 1)])" + ACT,
            id="policy-enum-subclass",
        ),
        pytest.param(
            "from enum import IntEnum\nclass Action(IntEnum):\n    UP = 2\n"
            "def act(obs):\n    return Action(*[2, 3])\n",
            id="starred-arguments",
        ),
        pytest.param(
            "import enum\ndef act(obs):\n    X = enum.StrEnum('X', 'A', module='enum')\n"
            "    return 0\n",
            id="inside-act",
        ),
    ],
)
def test_checker_rejects_enum_functional_api(source: str) -> None:
    message = first_message(source, "class-factory")
    assert "functional API" in message
    assert "class statement" in message and "class Action(IntEnum):" in message


def test_checker_points_at_the_enum_call() -> None:
    assert ("class-factory", 8, 9) in findings(FUNCTIONAL_COPY)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "import enum\nclass Action(enum.IntEnum):\n    UP = 2\n"
            "def act(obs):\n    return int(Action(2))\n",
            id="lookup-by-value",
        ),
        pytest.param(
            "from enum import IntEnum\nclass Action(IntEnum):\n    UP = 2\n"
            "def act(obs):\n    return int(Action(value=2))\n",
            id="lookup-by-value-keyword",
        ),
        pytest.param(
            "class Box:\n    def __init__(self, a, b):\n        self.a = a\n"
            "def act(obs):\n    return Box(1, 2).a\n",
            id="ordinary-class-two-arguments",
        ),
        pytest.param(
            "import collections\nPoint = collections.namedtuple('Point', 'x y')\n"
            "def act(obs):\n    return Point(1, 2).x\n",
            id="namedtuple",
        ),
    ],
)
def test_checker_accepts_ordinary_class_use(source: str) -> None:
    report = check_source(source)
    assert report.ok, format_report(report)


# -- the copy module's registry -------------------------------------------------------------------

DISPATCH_TABLE = """\
import copy
import math


class Marker:
    pass


def act(obs):
    copy.dispatch_table[Marker] = lambda obj: (lambda: math, (), ({"pi": 3}, None))
    copy.copy(Marker())
    return 0
"""


def test_checker_rejects_copy_dispatch_table() -> None:
    assert ("module-attribute-not-allowed", 10, 10) in findings(DISPATCH_TABLE)
    message = first_message(DISPATCH_TABLE, "module-attribute-not-allowed")
    assert "copy.dispatch_table is not allowed" in message and "write guard" in message
    assert "module-attribute-not-allowed" in [
        rule for rule, _, _ in findings("from copy import dispatch_table" + ACT)
    ]


def test_checker_accepts_plain_copies() -> None:
    source = "import copy\nstate = {'a': [1]}\ndef act(obs):\n    copy.deepcopy(state)\n"
    assert check_source(source + "    return len(copy.copy(state))\n").ok


# -- getattr & co. and forbidden builtins as values -----------------------------------------------

WALK = (
    """\
import functools


def walker(getattr=getattr):
    yield functools.reduce(getattr, ["gi_frame", "f_back", "f_globals"], running[0])


running = []
"""
    + ACT
)


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        pytest.param(WALK, 4, 20, id="default-under-its-own-name"),
        pytest.param("def f(g=getattr):\n    return g" + ACT, 1, 9, id="default"),
        pytest.param("g = getattr" + ACT, 1, 5, id="alias"),
        pytest.param("table = {'get': getattr}" + ACT, 1, 17, id="dict-value"),
        pytest.param("pick = lambda: setattr" + ACT, 1, 16, id="lambda-return"),
        pytest.param("pair = (hasattr, delattr)" + ACT, 1, 9, id="tuple"),
        pytest.param("class Tools:\n    get = getattr\n" + ACT, 2, 11, id="class-attribute"),
        pytest.param(
            "def act(obs):\n    return getattr\ndef getattr(o, k):\n    return o[k]\n",
            2,
            12,
            id="used-above-its-own-def",
        ),
        pytest.param(
            "def getattr(o, k):\n    return o[k]\ndel getattr" + ACT.replace("0", "getattr"),
            5,
            12,
            id="own-def-deleted",
        ),
    ],
)
def test_checker_rejects_attribute_builtins_as_values(source: str, line: int, column: int) -> None:
    assert ("computed-attribute", line, column) in findings(source), format_report(
        check_source(source)
    )
    assert "may only be called directly" in first_message(source, "computed-attribute")


def test_checker_value_note_explains_a_shadowing_that_does_not_count() -> None:
    message = first_message(WALK, "computed-attribute")
    assert "binds its own 'getattr', but not certainly before this line runs" in message


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "import functools\nif True:\n    def getattr(o, k):\n        return o[k]\n"
            "def act(obs):\n    return getattr(obs, 'na' + 'me')\n",
            id="own-def-only-in-an-if",
        ),
        pytest.param(
            "def rebind():\n    global getattr\n    getattr = None\n"
            "def act(obs):\n    return getattr(obs, 'na' + 'me')\n",
            id="global-rebinding-in-a-function",
        ),
    ],
)
def test_checker_shadowing_must_be_certain_for_computed_calls(source: str) -> None:
    assert "computed-attribute" in [rule for rule, _, _ in findings(source)]


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        pytest.param("def f(kind=type):\n    return kind" + ACT, 1, 12, id="type-as-default"),
        pytest.param("x = dir\ndir = 1" + ACT, 1, 5, id="dir-before-own-binding"),
        pytest.param("helpers = [vars, locals]" + ACT, 1, 12, id="list"),
    ],
)
def test_checker_rejects_forbidden_builtins_as_values(source: str, line: int, column: int) -> None:
    assert ("forbidden-builtin", line, column) in findings(source)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "def act(obs):\n    getattr = lambda o, k: o[k]\n    key = 'Ball'\n"
            "    return getattr(obs, key)['y'] % 2\n",
            id="function-local-own-getattr",
        ),
        pytest.param(
            "def lookup(obs, getattr):\n    return getattr(obs, 'x' + 'y')\n" + ACT,
            id="parameter-named-getattr",
        ),
        pytest.param(
            "dir = 1\ndef act(obs):\n    def inner():\n        return dir\n    return inner()\n",
            id="module-binding-seen-from-a-nested-function",
        ),
        pytest.param(
            "def outer():\n    type = 3\n    class Inner:\n        size = type\n    return Inner\n"
            + ACT,
            id="class-body-reads-the-enclosing-function",
        ),
    ],
)
def test_checker_accepts_the_policys_own_names(source: str) -> None:
    report = check_source(source)
    assert report.ok, format_report(report)


def test_checker_rejects_format_methods_as_values() -> None:
    assert ("string-format-attribute", 1, 5) in findings("f = '{0.__class__}'.format" + ACT)
    source = "def act(obs):\n    return len(list(map(str.format, ['{0.real}'], [1])))\n"
    assert ("string-format-attribute", 2, 25) in findings(source)
    assert check_source("f = '{:.1f}'.format" + ACT).ok


def test_checker_module_alias_shadowed_in_another_function_still_checked() -> None:
    # The old check trusted `operator` only while nothing anywhere assigned that name.
    source = (
        "import operator\ndef other():\n    operator = 1\n    return operator\n"
        "def act(obs):\n    return operator.attrgetter('x')(obs)\n"
    )
    assert ("module-attribute-not-allowed", 6, 21) in findings(source)
