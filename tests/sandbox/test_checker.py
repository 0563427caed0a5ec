"""The static checker: what it rejects (rule, position, guidance), what it accepts, and that an
accepted policy compiles under the restricted runtime."""

from __future__ import annotations

import warnings

import pytest

from sandbox.checker import check_source, format_report
from sandbox.policy_rules import MAX_SOURCE_BYTES
from sandbox.results import CheckReport, Diagnostic
from sandbox.runtime.restricted_env import compile_policy
from tests.sandbox.test_restricted_env import KITCHEN_SINK_POLICY, PONG_POLICY

ACT = "\ndef act(obs):\n    return 0\n"


def only(report: CheckReport) -> Diagnostic:
    assert not report.ok
    assert len(report.diagnostics) == 1, format_report(report)
    return report.diagnostics[0]


def rules(report: CheckReport) -> list[str]:
    return [diagnostic.rule for diagnostic in report.diagnostics]


# (source, rule, line, column, fragments the message must contain)
REJECTIONS = [
    pytest.param(
        "def act(obs):\n    return ().__class__.__bases__[0].__subclasses__()\n",
        "dunder-name",
        2,
        15,
        ["'__class__'", "Python internals", "obs['Ball']['x']"],
        id="subclasses-chain",
    ),
    pytest.param(
        "import os" + ACT,
        "import-not-allowed",
        1,
        1,
        ["'os' is not allowed", "math", "random", "collections", "obs dict"],
        id="import-os",
    ),
    pytest.param(
        "def act(obs):\n    return __import__('os')\n",
        "forbidden-builtin",
        2,
        12,
        ["__import__() is not available", "import statement"],
        id="dunder-import",
    ),
    pytest.param(
        "def act(obs):\n    return getattr(obs, '__cl' + 'ass__')\n",
        "computed-attribute",
        2,
        25,
        ["computed attribute name", "string literal", "getattr(obj, 'speed', 0)", ".get(key)"],
        id="getattr-computed",
    ),
    pytest.param(
        "def act(obs):\n    return getattr(obs, '__class__')\n",
        "computed-attribute",
        2,
        25,
        ["'__class__'", "starting with '_'", "ordinary attribute name"],
        id="getattr-literal-dunder",
    ),
    pytest.param(
        "def act(obs):\n    setattr(obs, name, 1)\n    return 0\nname = 'x'\n",
        "computed-attribute",
        2,
        18,
        ["setattr() with a computed attribute name", "string literal"],
        id="setattr-computed",
    ),
    pytest.param(
        "def act(obs):\n    data = open('/etc/passwd').read()\n    return 0\n",
        "forbidden-builtin",
        2,
        12,
        ["open() is not available", "no files", "obs dict"],
        id="open",
    ),
    pytest.param(
        "def act(obs):\n    return eval('1')\n",
        "forbidden-builtin",
        2,
        12,
        ["eval() is not available", "write the expression directly"],
        id="eval",
    ),
    pytest.param(
        "def act(obs):\n    exec('x = 1')\n    return 0\n",
        "forbidden-builtin",
        2,
        5,
        ["exec() is not available", "write the statements directly"],
        id="exec",
    ),
    pytest.param(
        "def act(obs):\n    return len(dir(obs))\n",
        "forbidden-builtin",
        2,
        16,
        ["dir() is not available", "keys you know"],
        id="dir",
    ),
    pytest.param(
        "def act(obs):\n    return type(obs) == dict\n",
        "forbidden-builtin",
        2,
        12,
        ["type() is not available", "isinstance(x, int)"],
        id="type",
    ),
    pytest.param(
        "def act(obs):\n    return len(globals())\n",
        "forbidden-builtin",
        2,
        16,
        ["globals() is not available", "`global name`"],
        id="globals",
    ),
    pytest.param(
        "from os import path" + ACT,
        "import-not-allowed",
        1,
        1,
        ["'os' is not allowed", "policies may import only"],
        id="from-os",
    ),
    pytest.param(
        "import importlib" + ACT,
        "import-not-allowed",
        1,
        1,
        ["'importlib' is not allowed", "policies may import only"],
        id="importlib",
    ),
    pytest.param(
        "import numpy as np" + ACT,
        "import-not-allowed",
        1,
        1,
        ["'numpy' is not allowed", "use lists"],
        id="numpy",
    ),
    pytest.param(
        "from . import helpers" + ACT,
        "import-not-allowed",
        1,
        1,
        ["relative imports", "single module"],
        id="relative-import",
    ),
    pytest.param(
        "from math import *" + ACT,
        "import-not-allowed",
        1,
        1,
        ["import *", "`import math`"],
        id="star-import",
    ),
    pytest.param(
        "import collections.abc" + ACT,
        "import-not-allowed",
        1,
        1,
        ["'collections.abc' is not allowed"],
        id="dotted-import",
    ),
    pytest.param(
        "from operator import attrgetter" + ACT,
        "module-attribute-not-allowed",
        1,
        1,
        ["operator.attrgetter is not allowed", "lambda"],
        id="from-operator-attrgetter",
    ),
    pytest.param(
        "import enum\ndef act(obs):\n    return enum.bltns.eval('1')\n",
        "module-attribute-not-allowed",
        3,
        17,
        ["enum.bltns is the module 'builtins'", "allowed modules"],
        id="enum-bltns",
    ),
    pytest.param(
        "import typing as t\ndef act(obs):\n    return t.get_type_hints(act)\n",
        "module-attribute-not-allowed",
        3,
        14,
        ["typing.get_type_hints is not allowed", "eval()"],
        id="typing-get-type-hints",
    ),
    pytest.param(
        "import math\ndef act(obs):\n    return math.clamp(1, 0, 2)\n",
        "unknown-module-attribute",
        3,
        17,
        ["module 'math' has no attribute 'clamp'", "write the function yourself"],
        id="math-clamp",
    ),
    pytest.param(
        "def act(obs):\n    return '{0.__class__}'.format(obs)\n",
        "string-format-attribute",
        2,
        12,
        ["reads attributes or items", "f-string"],
        id="format-dunder-template",
    ),
    pytest.param(
        "def act(obs):\n    return '{0:{1[0]}}'.format(obs, [1])\n",
        "string-format-attribute",
        2,
        12,
        ["reads attributes or items", "f-string"],
        id="format-nested-spec",
    ),
    pytest.param(
        "template = '{a}'\ndef act(obs):\n    return len(template.format_map(obs))\n",
        "string-format-attribute",
        3,
        16,
        [".format_map() on a computed string", "string literal", "f-string"],
        id="format-map-computed",
    ),
    pytest.param(
        "def act(obs):\n    return len(str.format('{0.real}', 1))\n",
        "string-format-attribute",
        2,
        16,
        [".format() on a computed string"],
        id="str-format-unbound",
    ),
    pytest.param(
        "x = 1\n",
        "no-act",
        1,
        1,
        ["top-level function `def act(obs):`", "int action"],
        id="no-act",
    ),
    pytest.param(
        "class Policy:\n    def act(self, obs):\n        return 0\n",
        "no-act",
        1,
        1,
        ["line 2 is nested", "move it to column 0"],
        id="act-as-method",
    ),
    pytest.param(
        "act = lambda obs: 0\n",
        "no-act",
        1,
        1,
        ["assigned on line 1", "define it with def"],
        id="act-lambda",
    ),
    pytest.param(
        "def act(a, b):\n    return 0\n",
        "act-signature",
        1,
        1,
        ["exactly one parameter", "`def act(a, b):`", "module-level variables"],
        id="act-two-params",
    ),
    pytest.param(
        "def act(obs, *rest, **options):\n    return 0\n",
        "act-signature",
        1,
        1,
        ["exactly one parameter"],
        id="act-varargs",
    ),
    pytest.param(
        "async def act(obs):\n    return 0\n",
        "act-signature",
        1,
        1,
        ["not `async def`", "int back"],
        id="async-act",
    ),
    pytest.param(
        "def act(obs):\n    yield 2\n",
        "act-signature",
        2,
        5,
        ["generator", "`return action`"],
        id="generator-act",
    ),
    pytest.param(
        "x = 1\n" * (MAX_SOURCE_BYTES // 6 + 1) + ACT,
        "source-too-large",
        1,
        1,
        ["bytes", "65536", "shorter policy"],
        id="too-large",
    ),
    pytest.param(
        "def act(obs):\n    if obs\n        return 0\n",
        "syntax",
        2,
        11,
        ["expected ':'", "valid Python 3.11"],
        id="syntax-error",
    ),
    pytest.param(
        "def act(obs):\n    return 0\nreturn 1\n",
        "syntax",
        3,
        1,
        ["'return' outside function", "valid Python"],
        id="late-compile-error",
    ),
    pytest.param(
        "def act(obs):\n    return 0\n\nif __name__ == '__main__':\n    act({})\n",
        "dunder-name",
        4,
        4,
        ["'__name__'", "never run as a script", "remove the `if __name__ == '__main__':` block"],
        id="main-block",
    ),
    pytest.param(
        "class Tracker:\n    def __init__(self):\n        self._last = 0\n" + ACT,
        "underscore-name",
        3,
        14,
        ["'_last'", "reserved for the sandbox", "rename it to 'last'"],
        id="private-attribute",
    ),
    pytest.param(
        "_cache = {}" + ACT,
        "underscore-name",
        1,
        1,
        ["'_cache'", "rename it to 'cache'"],
        id="private-global",
    ),
    pytest.param(
        "class Tracker:\n    def __repr__(self):\n        return 'T'\n" + ACT,
        "dunder-name",
        2,
        5,
        ["'__repr__'", "only __init__ and the comparison methods", "ordinary method"],
        id="dunder-method",
    ),
    pytest.param(
        "class Base:\n    pass\nclass Tracker(Base):\n    def __init__(self):\n"
        "        super().__init__()\n" + ACT,
        "forbidden-builtin",
        5,
        9,
        ["super() is not available", "Base.method(self)"],
        id="super-init",
    ),
    pytest.param(
        "def act(obs):\n    def bump():\n        nonlocal obs\n    return 0\n",
        "unsupported-syntax",
        3,
        9,
        ["nonlocal is not supported", "global"],
        id="nonlocal",
    ),
    pytest.param(
        "def act(obs):\n    match obs:\n        case {}:\n            return 0\n    return 1\n",
        "unsupported-syntax",
        2,
        5,
        ["match statements", "if/elif/else"],
        id="match",
    ),
    pytest.param(
        "async def helper():\n    return 1\n" + ACT,
        "unsupported-syntax",
        1,
        1,
        ["async functions", "plain `def`"],
        id="async-helper",
    ),
    pytest.param(
        "def act(obs):\n    g = (i for i in [1])\n    return g.gi_frame\n",
        "restricted",
        3,
        12,
        ['"gi_frame" is a restricted name', "RestrictedPython", "rewrite the line"],
        id="restrictedpython-only",
    ),
]


@pytest.mark.parametrize(("source", "rule", "line", "column", "fragments"), REJECTIONS)
def test_checker_rejects_with_guidance(
    source: str, rule: str, line: int, column: int, fragments: list[str]
) -> None:
    report = check_source(source)
    assert not report.ok
    # The first finding is the one named; a few sources have more (tested below).
    diagnostic = report.diagnostics[0]
    assert (diagnostic.rule, diagnostic.line, diagnostic.column) == (rule, line, column), (
        format_report(report)
    )
    for fragment in fragments:
        assert fragment in diagnostic.message


def test_checker_flags_each_link_of_the_subclasses_chain() -> None:
    report = check_source("def act(obs):\n    return ().__class__.__bases__[0].__subclasses__()\n")
    assert [(d.rule, d.column, d.message.split("'")[1]) for d in report.diagnostics] == [
        ("dunder-name", 15, "__class__"),
        ("dunder-name", 25, "__bases__"),
        ("dunder-name", 38, "__subclasses__"),
    ]


def test_checker_explains_super_init() -> None:
    source = (
        "class Base:\n    pass\nclass Tracker(Base):\n    def __init__(self):\n"
        "        super().__init__()\n" + ACT
    )
    report = check_source(source)
    assert rules(report) == ["forbidden-builtin", "dunder-name"]
    assert "super().__init__() is not supported" in report.diagnostics[1].message


GOOD_SNIPPETS = [
    pytest.param("def act(obs):\n    return 0\n", id="minimal"),
    pytest.param(
        "count = 0\ndef act(obs):\n    global count\n    count += 1\n    return count % 2\n",
        id="global-state",
    ),
    pytest.param(
        "def helper(o):\n    return o['y']\ndef act(obs):\n    return 2 if helper(obs['Ball']) < "
        "helper(obs['Player']) else 3\n",
        id="helper-function",
    ),
    pytest.param(
        "class Tracker:\n    def __init__(self):\n        self.ys = []\n        self.n = 0\n"
        "    def push(self, y):\n        self.ys.append(y)\n        self.n += 1\n"
        "    def __eq__(self, other):\n        return self.n == other.n\n"
        "tracker = Tracker()\ndef act(obs):\n    tracker.push(obs['Ball']['y'])\n    return 0\n",
        id="class-with-init",
    ),
    pytest.param(
        "def act(obs):\n    ys = [o['y'] for o in obs.values()]\n"
        "    by = {k: o['x'] for k, o in obs.items()}\n    return len(ys) + len(by)\n",
        id="comprehensions",
    ),
    pytest.param("import math" + ACT, id="import-math"),
    pytest.param("from collections import deque\nhistory = deque(maxlen=3)" + ACT, id="deque"),
    pytest.param(
        "from __future__ import annotations\nfrom typing import Optional, List\n" + ACT,
        id="future-and-typing",
    ),
    pytest.param(
        "def act(obs):\n    ball = obs.get('Ball')\n    return 0 if ball is None else 2\n",
        id="obs-get",
    ),
    pytest.param(
        "def act(obs):\n    print(f\"ball={obs['Ball']['y']:.1f} n={len(obs)}\")\n    return 0\n",
        id="f-string-print",
    ),
    pytest.param(
        "def act(obs):\n    try:\n        return int(obs['lives'])\n    except (KeyError, "
        "ValueError):\n        return 0\n",
        id="try-except",
    ),
    pytest.param(
        "def act(obs):\n    y = min(max(obs['Ball']['y'], 34), 194)\n    return abs(y) % 2\n",
        id="min-max-abs",
    ),
    pytest.param(
        "def act(obs):\n    objs = sorted(obs.values(), key=lambda o: o['x'])\n"
        "    for i, (a, b) in enumerate(zip(objs, objs[1:])):\n        pass\n"
        "    return sum(1 for _ in range(3)) if isinstance(objs, list) else 0\n",
        id="sorted-lambda-enumerate-zip-range",
    ),
    pytest.param(
        "def act(obs):\n    return len('{} {:.2f} {name}'.format(1, 2.0, name='x'))\n",
        id="format-literal-template",
    ),
    pytest.param(
        "dir = 1\ninput = 2\ndef act(obs):\n    return dir + input\n", id="shadowed-builtin-names"
    ),
    pytest.param(
        "def getattr(o, k):\n    return o[k]\ndef act(obs):\n    key = 'Ball'\n"
        "    return getattr(obs, key)['y'] % 2\n",
        id="own-getattr",
    ),
    pytest.param(
        "def act(obs):\n    for _ in range(2):\n        pass\n"
        "    return getattr(obs, 'get')('x', 0)\n",
        id="underscore-loop-and-literal-getattr",
    ),
    pytest.param(
        "def gen():\n    yield 1\ndef act(obs):\n    x: int = next(gen())\n    return x\n",
        id="generator-helper-and-annotation",
    ),
    pytest.param(
        "def act(obs):\n    counts = {'a': 0}\n    counts['a'] += 1\n    return counts['a']\n",
        id="augmented-item-assignment",
    ),
    pytest.param(
        "import enum\nclass Action(enum.IntEnum):\n    NOOP = 0\n    UP = 2\n"
        "def act(obs):\n    return int(Action.UP)\n",
        id="enum",
    ),
    pytest.param("# é ünïcode comment\ndef act(obs):\n    s = 'ß'\n    return 0\n", id="unicode"),
    pytest.param(PONG_POLICY, id="pong-policy"),
    pytest.param(KITCHEN_SINK_POLICY, id="kitchen-sink-policy"),
]


@pytest.mark.parametrize("source", GOOD_SNIPPETS)
def test_checker_accepts_good_policies(source: str) -> None:
    report = check_source(source)
    assert report.ok, format_report(report)
    assert report.diagnostics == []
    # What the checker accepts, the restricted runtime compiles.
    compile_policy(source, "<policy>", restricted=True)


def test_checker_reports_every_problem_in_position_order() -> None:
    source = (
        "import os\n"  # 1
        "import math\n"  # 2
        "_state = {}\n"  # 3
        "def act(obs, extra):\n"  # 4
        "    x = eval('1')\n"  # 5
        "    y = obs.__class__\n"  # 6
        "    z = getattr(obs, 'na' + 'me')\n"  # 7
        "    return math.pi\n"  # 8
    )
    report = check_source(source)
    found = [(d.line, d.rule) for d in report.diagnostics]
    assert found == [
        (1, "import-not-allowed"),
        (3, "underscore-name"),
        (4, "act-signature"),
        (5, "forbidden-builtin"),
        (6, "dunder-name"),
        (7, "computed-attribute"),
    ]
    assert report.diagnostics == sorted(report.diagnostics, key=lambda d: (d.line, d.column))


def test_checker_reports_several_problems_on_one_line() -> None:
    report = check_source("def act(obs):\n    return eval(open('f').read())\n")
    assert [(d.line, d.column, d.rule) for d in report.diagnostics] == [
        (2, 12, "forbidden-builtin"),
        (2, 17, "forbidden-builtin"),
    ]


def test_checker_deduplicates_identical_findings() -> None:
    report = check_source("import os, os" + ACT)
    assert rules(report) == ["import-not-allowed"]


def test_checker_module_level_finding_does_not_hide_others_on_line_one() -> None:
    report = check_source("x = (i for i in []).gi_frame\n")
    assert rules(report) == ["no-act", "restricted"]


def test_checker_trusts_module_alias_only_while_not_reassigned() -> None:
    source = "import math\ndef act(obs):\n    math = obs\n    return math.clamp\n"
    assert check_source(source).ok


def test_checker_drops_restrictedpython_duplicates() -> None:
    # RestrictedPython also refuses each of these lines; only our (more precise) finding stays.
    source = "def act(obs):\n    return eval('1') + obs.__class__ + _x\n"
    assert "restricted" not in rules(check_source(source))


def test_checker_syntax_error_stops_the_check() -> None:
    diagnostic = only(check_source("import os\ndef act(obs:\n    return 0\n"))
    assert diagnostic.rule == "syntax"
    assert diagnostic.line == 2


def test_checker_reports_too_deep_nesting_instead_of_crashing() -> None:
    diagnostic = only(check_source("def act(obs):\n    return " + "-" * 5000 + "1\n"))
    assert diagnostic.rule == "too-complex"
    assert "split it into several statements" in diagnostic.message


def test_checker_keeps_compiler_warnings_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_source("def act(obs):\n    return int(obs is 'x' and '\\d' == 1)\n").ok
    assert capfd.readouterr().err == ""


def test_checker_null_byte_is_a_syntax_problem() -> None:
    diagnostic = only(check_source("def act(obs):\n    return 0\x00\n"))
    assert diagnostic.rule == "syntax"


def test_checker_columns_count_characters_not_bytes() -> None:
    diagnostic = only(check_source("def act(obs):\n    s = 'éé'; return obs.__dict__\n"))
    assert (diagnostic.line, diagnostic.column) == (2, 26)


def test_checker_points_at_multiline_attribute() -> None:
    source = "def act(obs):\n    return (obs\n        .__class__)\n"
    diagnostic = only(check_source(source))
    assert (diagnostic.rule, diagnostic.line, diagnostic.column) == ("dunder-name", 3, 10)


def test_checker_size_limit_is_inclusive() -> None:
    padding = "#" * (MAX_SOURCE_BYTES - len(ACT) - 1) + "\n"
    assert len((padding + ACT).encode()) == MAX_SOURCE_BYTES
    assert check_source(padding + ACT).ok
    assert rules(check_source("#" + padding + ACT)) == ["source-too-large"]


def test_checker_format_report() -> None:
    assert format_report(check_source(ACT)) == "ok: no problems found"
    text = format_report(check_source("import os\nimport sys\n" + ACT))
    assert text.splitlines() == [
        "line 1, col 1: [import-not-allowed] " + only(check_source("import os" + ACT)).message,
        "line 2, col 1: [import-not-allowed] " + only(check_source("import sys" + ACT)).message,
        "rejected: 2 problems",
    ]


def test_checker_accepts_a_5kb_policy() -> None:
    # Its speed is measured by benchmarks/bench_checker.py, not here: no test times anything.
    source = PONG_POLICY + KITCHEN_SINK_POLICY.replace("def act(obs)", "def act2(obs)")
    assert 5_000 < len(source.encode()) < 8_000
    assert check_source(source).ok
