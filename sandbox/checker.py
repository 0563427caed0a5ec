"""Static check of a policy's source, before it costs an evaluation.

`check_source` reports every problem it finds, each as a `Diagnostic` with a rule id, a position
and a message written for the LLM that has to fix the code: what is not allowed, why, and what to
write instead. It is a filter that gives good feedback, not the security wall (DESIGN.md §4): the
restricted runtime and the OS sandbox enforce the same rules again.

Checks, in order:
1. size (`source-too-large`), then parsing (`syntax`); either failure ends the check, since
   nothing else can be said about source that does not parse;
2. our AST rules (below), which name the problem precisely;
3. the compiler's own late errors ('return' outside function, duplicate argument, ...) as
   `syntax`;
4. RestrictedPython's transformer, the one the runtime compiles with; a finding of its that our
   rules did not already report on that line becomes a `restricted` diagnostic.

Rule ids: source-too-large, syntax, too-complex, import-not-allowed, module-attribute-not-allowed,
unknown-module-attribute, dunder-name, underscore-name, forbidden-builtin, computed-attribute,
attribute-not-allowed, string-format-attribute, unsupported-syntax, no-act, act-signature,
restricted.

Positions: `line` is 1-based; `column` is 1-based and counts characters (ast's col_offset is a
0-based UTF-8 byte offset and is converted). A finding about the whole module (`no-act`,
`source-too-large`) is at line 1, column 1.

Deliberately allowed: `global` (module state is part of the policy contract), lambdas, nested
functions, classes with `__init__` and comparison methods, generators other than `act`,
try/except, f-strings, `obj.attr += 1` and annotated assignments (see PolicyTransformer).
"""

from __future__ import annotations

import ast
import keyword
import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from sandbox.policy_rules import (
    ALLOWED_DUNDER_METHODS,
    ALLOWED_MODULES,
    ATTRIBUTE_BUILTINS,
    FORBIDDEN_ATTRIBUTES,
    FORBIDDEN_BUILTINS,
    MAX_SOURCE_BYTES,
    allowed_modules_text,
    load_allowed_module,
    module_attribute_problem,
    template_looks_up_fields,
)
from sandbox.results import CheckReport, Diagnostic
from sandbox.runtime.restricted_env import COMPILE_FLAGS, PolicyTransformer

POLICY_FILENAME = "<policy>"

_OBS_HINT = "compute the action from the obs dict with plain Python and those modules"

# Extra advice for modules LLMs reach for most often.
_IMPORT_HINTS = {
    "numpy": "numpy is not available: use lists, min/max/sum and the math module",
    "np": "numpy is not available: use lists, min/max/sum and the math module",
    "time": "time is not available: count steps in a module-level variable instead of reading "
    "the clock",
    "re": "there is nothing to parse in an observation; read the dict keys directly",
    "dataclasses": "use a plain class with an __init__ method instead of a dataclass",
    "string": "write the few characters you need as a literal",
    "json": "the observation is already a dict; print() it if you need to see it",
}

# What to say about particular dunder names, beyond the general rule.
_DUNDER_HINTS = {
    "__name__": (
        "the policy module is imported by the runner, never run as a script: remove the "
        "`if __name__ == '__main__':` block and any test code in it"
    ),
    "__main__": "remove the `if __name__ == '__main__':` block and any test code in it",
    "__all__": "the runner only calls act(); remove __all__",
    "__slots__": "remove __slots__; plain attributes set in __init__ work",
    "__init__": (
        "do not call __init__ yourself (super().__init__() is not supported either): set up "
        "all attributes in the class's own __init__"
    ),
    "__dict__": "keep data you need to look up by name in a dict of your own",
    "__file__": "a policy has no files",
    "__doc__": "use a comment instead",
}

_RESTRICTED_LINE = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)


def check_source(source: str) -> CheckReport:
    """Check a policy module's source; report every problem found (see the module docstring)."""
    # The compiler's warnings ('"is" with a literal', invalid escapes) are not reasons to
    # reject, and must not leak to the caller's stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _check(source)
        except (RecursionError, MemoryError):
            # ast.parse, compile() and RestrictedPython's transformer all recurse on nesting.
            return _report(
                [
                    Diagnostic(
                        rule="too-complex",
                        line=1,
                        column=1,
                        message=(
                            "the code nests too deeply to compile (e.g. hundreds of nested "
                            "brackets or a very long chain of operators in one expression); split "
                            "it into several statements, or use a loop or a list"
                        ),
                    )
                ]
            )


def _check(source: str) -> CheckReport:
    size = len(source.encode("utf-8", errors="surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        return _report(
            [
                Diagnostic(
                    rule="source-too-large",
                    line=1,
                    column=1,
                    message=(
                        f"the policy is {size} bytes; the limit is {MAX_SOURCE_BYTES} bytes "
                        f"({MAX_SOURCE_BYTES // 1024} KiB). Write a shorter policy: drop dead "
                        "code, long comments and large data tables"
                    ),
                )
            ]
        )
    try:
        tree = ast.parse(source, POLICY_FILENAME)
    except (SyntaxError, ValueError) as error:  # ValueError: null bytes on some 3.11 releases
        return _report([_syntax_diagnostic(error, source)])

    rules = _Rules(source, tree)
    diagnostics = rules.run()

    # The compiler's late errors; compiling an AST leaves it unchanged, so do it before the
    # transformer below rewrites the tree in place.
    try:
        compile(tree, POLICY_FILENAME, "exec", flags=COMPILE_FLAGS, dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        diagnostics.append(_syntax_diagnostic(error, source))

    diagnostics.extend(_restricted_diagnostics(tree, rules))
    return _report(diagnostics)


def format_report(report: CheckReport) -> str:
    """Human-readable report: one line per diagnostic, or a single line saying it passed."""
    if report.ok:
        return "ok: no problems found"
    lines = [diagnostic.render() for diagnostic in report.diagnostics]
    count = len(report.diagnostics)
    lines.append(f"rejected: {count} problem{'s' if count != 1 else ''}")
    return "\n".join(lines)


def _report(diagnostics: Iterable[Diagnostic]) -> CheckReport:
    unique = sorted(set(diagnostics), key=lambda d: (d.line, d.column, d.rule, d.message))
    return CheckReport(ok=not unique, diagnostics=unique)


def _syntax_diagnostic(error: SyntaxError | ValueError, source: str) -> Diagnostic:
    if not isinstance(error, SyntaxError):
        return Diagnostic(
            rule="syntax", line=1, column=1, message=f"{error}; remove the offending characters"
        )
    line = error.lineno or 1
    text = error.text
    if text is None:
        lines = source.splitlines()
        text = lines[line - 1] if 0 < line <= len(lines) else ""
    shown = f" in {text.strip()!r}" if text.strip() else ""
    return Diagnostic(
        rule="syntax",
        line=line,
        column=max(error.offset or 1, 1),
        message=(
            f"{error.msg}{shown}. The policy must be valid Python 3.11: check this line and the "
            "one before it (an unclosed bracket or a missing colon often shows up a line later)"
        ),
    )


def _restricted_diagnostics(tree: ast.Module, rules: _Rules) -> list[Diagnostic]:
    """RestrictedPython's findings that our own rules did not already report on that line.

    RestrictedPython's warnings are dropped: in RestrictedPython 9 they are either about the
    `printed` variable (print works in a policy) or duplicate an error.
    """
    transformer = PolicyTransformer()
    transformer.visit(tree)
    found = []
    for text, (line, col_offset) in zip(
        transformer.errors, transformer.error_positions, strict=True
    ):
        match = _RESTRICTED_LINE.match(text)
        info = match.group(2) if match else text
        line = line or 1
        if line in rules.covered_lines:
            continue
        found.append(
            Diagnostic(
                rule="restricted",
                line=line,
                column=rules.column(line, col_offset or 0),
                message=(
                    f"{info.rstrip('.')}: the sandbox compiles policies with RestrictedPython, "
                    "which refuses this; rewrite the line with ordinary names, attribute reads "
                    "and calls"
                ),
            )
        )
    return found


def _suggested_name(name: str) -> str:
    stripped = name.strip("_")
    if stripped.isidentifier() and not keyword.iskeyword(stripped):
        return stripped
    return f"my{name}"


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Rules:
    """Our AST rules, in one walk over the tree (a dispatch on node type, which is about twice
    as fast as ast.NodeVisitor here), then the checks that need the whole module: names the
    module binds anywhere, module aliases, and the `act` contract."""

    def __init__(self, source: str, tree: ast.Module) -> None:
        self.tree = tree
        self.lines = source.splitlines()
        self.diagnostics: list[Diagnostic] = []
        # Lines our rules reported on, so RestrictedPython's duplicates can be dropped.
        self.covered_lines: set[int] = set()
        # Every name the module binds anywhere: a crude scope analysis, enough to tell that a
        # policy with its own `dir` or `input` variable is not using the builtin. `assigned`
        # leaves out imports: a module alias that is also assigned is not trusted to be the module.
        self.bound: set[str] = set()
        self.assigned: set[str] = set()
        self.module_aliases: dict[str, str] = {}  # name bound by `import m [as name]` -> m
        self.methods: set[int] = set()  # ids of functions defined directly in a class body
        self.top_level_act: set[int] = set()  # ids of top-level (async) defs named act
        # Decided after the walk, once `bound` and `module_aliases` are complete.
        self.builtin_uses: list[ast.Name] = []
        self.attribute_builtin_calls: list[tuple[str, ast.Call]] = []
        # getattr & co. used other than as the callee of a call (`map(getattr, objs, names)`).
        self.attribute_builtin_values: list[ast.Name] = []
        self.callees: set[int] = set()  # ids of the Name nodes that are called
        self.module_attribute_uses: list[ast.Attribute] = []

    def run(self) -> list[Diagnostic]:
        # A top-level `async def act` is reported once, as act-signature.
        self.top_level_act.update(
            id(statement)
            for statement in self.tree.body
            if isinstance(statement, ast.AsyncFunctionDef) and statement.name == "act"
        )
        handlers: dict[type[ast.AST], Callable[[Any], None]] = {
            ast.Import: self.visit_Import,
            ast.ImportFrom: self.visit_ImportFrom,
            ast.Name: self.visit_Name,
            ast.Attribute: self.visit_Attribute,
            ast.keyword: self.visit_keyword,
            ast.arg: self.visit_arg,
            ast.ExceptHandler: self.visit_ExceptHandler,
            ast.MatchAs: self.visit_match_capture,
            ast.MatchStar: self.visit_match_capture,
            ast.FunctionDef: self.visit_FunctionDef,
            ast.AsyncFunctionDef: self.visit_AsyncFunctionDef,
            ast.Lambda: self.visit_Lambda,
            ast.ClassDef: self.visit_ClassDef,
            ast.Call: self.visit_Call,
            ast.Nonlocal: self.visit_Nonlocal,
            ast.Match: self.visit_Match,
            ast.TryStar: self.visit_TryStar,
            ast.Await: self.visit_async,
            ast.AsyncFor: self.visit_async,
            ast.AsyncWith: self.visit_async,
        }
        # ast.walk is breadth first: a class is seen before the methods in its body.
        for node in ast.walk(self.tree):
            handler = handlers.get(type(node))
            if handler is not None:
                handler(node)
        self._check_deferred()
        self._check_act()
        return self.diagnostics

    # -- reporting -----------------------------------------------------------------------------

    def column(self, line: int, col_offset: int) -> int:
        """1-based character column from ast's 0-based UTF-8 byte offset."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if text.isascii():
            return col_offset + 1
        return len(text.encode("utf-8")[:col_offset].decode("utf-8", errors="replace")) + 1

    def add(
        self,
        rule: str,
        node: ast.AST | None,
        message: str,
        *,
        line: int | None = None,
        col_offset: int | None = None,
        also_covers: int | None = None,
    ) -> None:
        """Record a finding at `node` (or at line/col_offset); `node=None` is the whole module,
        reported at line 1, column 1, which covers no line."""
        if node is None:
            self.diagnostics.append(Diagnostic(rule=rule, line=1, column=1, message=message))
            return
        start = line if line is not None else getattr(node, "lineno", 1)
        offset = col_offset if col_offset is not None else getattr(node, "col_offset", 0)
        self.diagnostics.append(
            Diagnostic(rule=rule, line=start, column=self.column(start, offset), message=message)
        )
        first = getattr(node, "lineno", start)
        last = getattr(node, "end_lineno", None) or first
        self.covered_lines.update(range(min(first, start), max(last, start) + 1))
        if also_covers is not None:
            self.covered_lines.add(also_covers)

    def bind(self, name: str) -> None:
        self.bound.add(name)
        self.assigned.add(name)

    def check_name(
        self,
        name: str,
        node: ast.AST,
        *,
        what: str = "name",
        line: int | None = None,
        col_offset: int | None = None,
        also_covers: int | None = None,
    ) -> None:
        """Report a name that starts with "_" (a lone "_" is fine)."""
        if not name.startswith("_") or name == "_":
            return
        where = {"line": line, "col_offset": col_offset, "also_covers": also_covers}
        if _is_dunder(name):
            hint = _DUNDER_HINTS.get(
                name, "use ordinary names; to read an object in obs use obs['Ball']['x']"
            )
            self.add(
                "dunder-name",
                node,
                f"the {what} {name!r} is not allowed: names that start and end with '__' reach "
                f"Python internals, which are off limits in a policy; {hint}",
                **where,
            )
        else:
            self.add(
                "underscore-name",
                node,
                f"the {what} {name!r} is not allowed: names starting with '_' are reserved for "
                f"the sandbox's guards; rename it to {_suggested_name(name)!r}",
                **where,
            )

    # -- imports -------------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            self.bound.add(bound)
            if alias.name not in ALLOWED_MODULES:
                self._import_not_allowed(node, alias.name)
                continue
            self.check_name(bound, node, what="import name")
            self.module_aliases[bound] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.bound.update(alias.asname or alias.name for alias in node.names)
        module_name = node.module or ""
        if node.level:
            self.add(
                "import-not-allowed",
                node,
                "relative imports are not allowed: a policy is a single module; import only "
                f"from these standard modules: {allowed_modules_text()}",
            )
            return
        if module_name not in ALLOWED_MODULES:
            self._import_not_allowed(node, module_name)
            return
        module = load_allowed_module(module_name)
        for alias in node.names:
            if alias.name == "*":
                self.add(
                    "import-not-allowed",
                    node,
                    f"`from {module_name} import *` is not allowed: import the names you use "
                    f"(`from {module_name} import name`) or the module (`import {module_name}`)",
                )
                continue
            if alias.name.startswith("_"):
                self.check_name(alias.name, node, what="imported name")
                continue
            if alias.asname:
                self.check_name(alias.asname, node, what="import name")
            if module_name == "__future__":
                continue
            problem = module_attribute_problem(module, alias.name)
            if problem is not None:
                self.add("module-attribute-not-allowed", node, problem)
            elif not hasattr(module, alias.name):
                self.add(
                    "unknown-module-attribute",
                    node,
                    f"module {module_name!r} has no name {alias.name!r}: check the spelling, or "
                    "write the function yourself",
                )

    def _import_not_allowed(self, node: ast.AST, name: str) -> None:
        top = name.split(".")[0]
        hint = _IMPORT_HINTS.get(top, _OBS_HINT)
        self.add(
            "import-not-allowed",
            node,
            f"import of {name!r} is not allowed: policies may import only "
            f"{allowed_modules_text()}; {hint}",
        )

    # -- names and attributes ------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if not isinstance(node.ctx, ast.Load):
            self.bind(name)
        elif name in FORBIDDEN_BUILTINS:
            self.builtin_uses.append(node)  # unless the module binds that name itself
            return
        elif name in ATTRIBUTE_BUILTINS:
            self.attribute_builtin_values.append(node)  # unless it is called, or bound
        self.check_name(name, node)

    def visit_arg(self, node: ast.arg) -> None:
        self.bind(node.arg)

    def visit_match_capture(self, node: ast.MatchAs | ast.MatchStar) -> None:
        if node.name:
            self.bind(node.name)
            self.check_name(node.name, node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            line, col_offset = _attribute_position(node)
            self.check_name(node.attr, node, what="attribute", line=line, col_offset=col_offset)
            return
        if node.attr in FORBIDDEN_ATTRIBUTES:
            line, col_offset = _attribute_position(node)
            self.add(
                "attribute-not-allowed",
                node,
                f"the attribute {node.attr!r} is not allowed: {FORBIDDEN_ATTRIBUTES[node.attr]}",
                line=line,
                col_offset=col_offset,
            )
        if isinstance(node.value, ast.Name):
            self.module_attribute_uses.append(node)  # once all imports are known

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None and _is_dunder(node.arg):
            self.check_name(node.arg, node, what="keyword argument")

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bind(node.name)
            self.check_name(node.name, node)

    # -- definitions ---------------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        name = node.name
        self.bind(name)
        if _is_dunder(name) and id(node) in self.methods:
            if name not in ALLOWED_DUNDER_METHODS:
                allowed = ", ".join(sorted(ALLOWED_DUNDER_METHODS - {"__init__"}))
                self.add(
                    "dunder-name",
                    node,
                    f"defining the method {name!r} is not allowed: a class may define only "
                    f"__init__ and the comparison methods ({allowed}); make it an ordinary "
                    "method instead, e.g. `def describe(self):` rather than `def __repr__(self):`",
                )
        else:
            self.check_name(name, node, what="function name")
        self._check_parameters(node.args, node.lineno)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        if id(node) not in self.top_level_act:  # a top-level `async def act` is act-signature
            self.add("unsupported-syntax", node, _ASYNC_MESSAGE)
        self.visit_FunctionDef(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._check_parameters(node.args, node.lineno)

    def _check_parameters(self, arguments: ast.arguments, def_line: int) -> None:
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]
        for arg in every:
            # RestrictedPython reports parameters on the def line: cover that line too.
            self.check_name(arg.arg, arg, what="parameter", also_covers=def_line)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bind(node.name)
        self.methods.update(
            id(item)
            for item in node.body
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
        )
        self.check_name(node.name, node, what="class name")
        for kw in node.keywords:
            if kw.arg == "metaclass":
                self.add(
                    "unsupported-syntax",
                    node,
                    "metaclass= is not allowed: define a plain class (Enum and IntEnum bases "
                    "work without it)",
                )

    # -- calls ---------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            self.callees.add(id(func))
        if isinstance(func, ast.Name) and func.id in ATTRIBUTE_BUILTINS:
            self.attribute_builtin_calls.append((func.id, node))  # unless the module binds it
        elif isinstance(func, ast.Attribute) and func.attr in ("format", "format_map"):
            self._check_format(func.attr, func.value, node)

    def _check_attribute_builtin(self, name: str, node: ast.Call) -> None:
        if len(node.args) < 2:
            return
        attribute = node.args[1]
        if isinstance(attribute, ast.Constant) and isinstance(attribute.value, str):
            literal = attribute.value
            if literal.startswith("_"):
                self.add(
                    "computed-attribute",
                    attribute,
                    f"{name}(..., {literal!r}) is not allowed: attribute names starting "
                    "with '_' reach Python internals or the sandbox's guards; use an ordinary "
                    "attribute name",
                )
            elif literal in FORBIDDEN_ATTRIBUTES:
                self.add(
                    "attribute-not-allowed",
                    attribute,
                    f"the attribute {literal!r} is not allowed: {FORBIDDEN_ATTRIBUTES[literal]}",
                )
            elif literal in INSPECT_ATTRIBUTES:
                self.add(
                    "attribute-not-allowed",
                    attribute,
                    f"the attribute {literal!r} is not allowed: frames, code objects and "
                    "tracebacks reach the interpreter's internals, which a policy never needs",
                )
            return
        example = f"{name}(obj, 'speed'{', 0' if name == 'getattr' else ''})"
        self.add(
            "computed-attribute",
            attribute,
            f"{name}() with a computed attribute name is not allowed: the name must be a string "
            f"literal such as {example}, or better, plain attribute access. Objects in obs are "
            "dicts: look computed keys up with obs['Ball'][key] or .get(key)",
        )

    def _check_format(self, method: str, template: ast.expr, node: ast.Call) -> None:
        if isinstance(template, ast.Constant) and isinstance(template.value, str):
            try:
                looks_up = template_looks_up_fields(template.value)
            except ValueError:
                return  # a malformed template fails at run time with a clear ValueError
            if looks_up:
                self.add(
                    "string-format-attribute",
                    node,
                    f"this .{method}() template reads attributes or items inside its braces "
                    "(like {0.x} or {0[1]}); str.format does those lookups in C, around the "
                    "sandbox's attribute guard. Use an f-string such as f\"{ball['x']:.1f}\"",
                )
            return
        if isinstance(template, ast.Constant):
            return  # bytes and numbers have no format method worth checking
        self.add(
            "string-format-attribute",
            node,
            f".{method}() on a computed string is not allowed: its template cannot be checked "
            "for attribute lookups such as '{0.__class__}'. Call it on a string literal, e.g. "
            "'{:.1f}'.format(x), or use an f-string",
        )

    # -- statements the sandbox does not support -----------------------------------------------

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.add(
            "unsupported-syntax",
            node,
            "nonlocal is not supported: keep shared state in a module-level variable (updated "
            "with `global name`), in a dict or list, or in an object's attribute",
        )

    def visit_Match(self, node: ast.Match) -> None:
        self.add(
            "unsupported-syntax",
            node,
            "match statements are not supported by the sandbox's compiler; use if/elif/else",
        )

    def visit_TryStar(self, node: ast.TryStar) -> None:
        self.add(
            "unsupported-syntax",
            node,
            "except* (exception groups) is not supported; use a plain except clause",
        )

    def visit_async(self, node: ast.Await | ast.AsyncFor | ast.AsyncWith) -> None:
        self.add("unsupported-syntax", node, _ASYNC_MESSAGE)

    # -- whole-module checks -------------------------------------------------------------------

    def _check_deferred(self) -> None:
        """The checks that needed the complete `bound` and `module_aliases`."""
        for node in self.builtin_uses:
            if node.id in self.bound:
                self.check_name(node.id, node)
            else:
                self.add(
                    "forbidden-builtin",
                    node,
                    f"{node.id}() is not available to policies: {FORBIDDEN_BUILTINS[node.id]}",
                )
        for name, call in self.attribute_builtin_calls:
            if name not in self.bound:
                self._check_attribute_builtin(name, call)
        for node in self.attribute_builtin_values:
            if node.id not in self.bound and id(node) not in self.callees:
                self.add(
                    "computed-attribute",
                    node,
                    f"{node.id} may only be called directly, as {node.id}(obj, 'name'...) with "
                    "a string literal name: passed around as a value (to map, reduce, a "
                    "variable...) it looks up names that cannot be checked",
                )
        for node in self.module_attribute_uses:
            assert isinstance(node.value, ast.Name)
            module_name = self.module_aliases.get(node.value.id)
            if module_name is None or node.value.id in self.assigned:
                continue
            module = load_allowed_module(module_name)
            line, col_offset = _attribute_position(node)
            problem = module_attribute_problem(module, node.attr)
            if problem is not None:
                self.add(
                    "module-attribute-not-allowed",
                    node,
                    problem,
                    line=line,
                    col_offset=col_offset,
                )
            elif not hasattr(module, node.attr):
                self.add(
                    "unknown-module-attribute",
                    node,
                    f"module {module_name!r} has no attribute {node.attr!r}: check the spelling, "
                    "or write the function yourself",
                    line=line,
                    col_offset=col_offset,
                )

    # -- the act contract ----------------------------------------------------------------------

    def _check_act(self) -> None:
        top_level = [
            statement
            for statement in self.tree.body
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
            and statement.name == "act"
        ]
        if not top_level:
            self.add("no-act", None, _no_act_message(self.tree))
            return
        act = top_level[-1]  # the last definition is the one the module ends up with
        if isinstance(act, ast.AsyncFunctionDef):
            self.add(
                "act-signature",
                act,
                "act must be a plain `def act(obs):`, not `async def`: the runner calls act(obs) "
                "and needs an int back, not a coroutine",
            )
        arguments = act.args
        positional = [*arguments.posonlyargs, *arguments.args]
        if len(positional) != 1 or arguments.vararg or arguments.kwarg or arguments.kwonlyargs:
            self.add(
                "act-signature",
                act,
                "act must take exactly one parameter, the observation dict: `def act(obs):`; "
                f"found `def act({ast.unparse(arguments)}):`. Keep state between steps in "
                "module-level variables (updated with `global name`) instead of extra parameters",
            )
        for node in _own_nodes(act):
            if isinstance(node, ast.Yield | ast.YieldFrom):
                self.add(
                    "act-signature",
                    node,
                    "act contains `yield`, which makes it a generator, not a function that "
                    "returns an action; use `return action` instead",
                )
                break


_ASYNC_MESSAGE = (
    "async functions and await are not supported: act is called synchronously and must return an "
    "int; use plain `def` functions"
)


def _attribute_position(node: ast.Attribute) -> tuple[int, int]:
    """Where the attribute's name is (`c` in `a.b.c`), as (line, col_offset)."""
    line = node.end_lineno or node.lineno
    col_offset = (node.end_col_offset or 0) - len(node.attr.encode("utf-8"))
    return line, max(col_offset, 0)


def _own_nodes(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterable[ast.AST]:
    """The nodes of a function's body, not descending into nested functions or classes."""
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))


def _no_act_message(tree: ast.Module) -> str:
    message = (
        "the policy must define a top-level function `def act(obs):` that returns an int action "
        "index; none was found"
    )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == "act"
            and node not in tree.body
        ):
            return (
                f"{message} at the top level (the one on line {node.lineno} is nested inside "
                "another statement; move it to column 0 of the module)"
            )
    for statement in tree.body:
        targets = statement.targets if isinstance(statement, ast.Assign) else []
        if any(isinstance(target, ast.Name) and target.id == "act" for target in targets):
            return f"{message} (act is assigned on line {statement.lineno}; define it with def)"
    return message
