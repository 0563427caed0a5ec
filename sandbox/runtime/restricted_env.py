"""Compile a policy and build the namespace it runs in, inside the sandbox.

With checking on, a policy is compiled by RestrictedPython, which rewrites every attribute read
into `_getattr_(obj, "name")`, every item read into `_getitem_`, every attribute or item write
into `_write_(obj)...`, every loop into `_getiter_`, and so on; this module supplies those guards.
With checking off it is compiled and run as plain Python. Either way the OS sandbox is the wall
(docs/DESIGN.md §4); the guards make the usual escapes fail with a clear exception.

The rules (allowed modules, forbidden builtins, blocked module attributes) come from
`sandbox.policy_rules`, which the host-side checker uses too; the guards themselves are built
in `sandbox.runtime.policy_guards`. This module and that one import only the standard library,
RestrictedPython and `sandbox.policy_rules`, as the sandbox image requires.

Where RestrictedPython's stock helpers would break ordinary policy code, we deviate on purpose:
- builtins: RestrictedPython's `safe_builtins` plus min/max/sum/sorted/enumerate/zip/... as the
  plain functions (RestrictedPython leaves them out because they iterate in C around `_getiter_`,
  which matters only when `_getiter_` enforces per-object security; ours is `iter`). Not
  `limited_builtins`, whose `range` refuses more than 1000 items and whose `list("ab")` raises,
  and not `utility_builtins`, which hands out `math`/`random`/`string` without an import: a
  policy must behave the same with checking on and off.
- `_getattr_` raises AttributeError for a missing attribute (RestrictedPython's `safer_getattr`
  quietly returns None), also refuses modules outside the allowlist and blocked module
  attributes, and lets `str.format` run when the template looks nothing up by name.
- `_write_` lets a policy modify what it owns: dicts, lists, sets, deques, instances of its own
  classes, the classes themselves and its own functions; anything else (a module, a builtin
  type, a stdlib object) raises TypeError.
- `PolicyTransformer` accepts `obj.attr += 1`, `items[k] += 1` and annotated assignments, which
  RestrictedPython refuses although LLM-written code is full of them; each is rewritten into the
  same guarded reads and writes as the plain statements.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import operator
from types import CodeType
from typing import Any

from RestrictedPython import compile_restricted_exec, safe_builtins
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
)
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

from sandbox.policy_rules import FORBIDDEN_BUILTINS
from sandbox.runtime.policy_guards import Guards, apply, inplacevar, make_guards

POLICY_MODULE_NAME = "policy"

# RestrictedPython's compile() inherits `from __future__ import annotations` from its own module,
# so restricted policies get lazy (string) annotations. Plain mode uses the same flag, so that an
# annotation naming something undefined behaves the same with checking on and off.
COMPILE_FLAGS = __future__.annotations.compiler_flag


class PolicyTransformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer, plus augmented assignment to attributes and items and
    annotated assignments, and error positions for the checker.

    `self.count += 1` becomes (the temporaries cannot clash: policy names may not start with "_")

        _tmp0 = self
        try:
            _write_(_tmp0).count = _inplacevar_("+=", _getattr_(_tmp0, "count"), 1)
        finally:
            del _tmp0

    which evaluates `self` once, like Python does, and goes through the same guards as a read
    followed by a plain assignment. Annotated assignments are kept as they are once their parts
    have been visited: the target goes through the usual checks and write guard, and the
    annotation is never evaluated (annotations are lazy, see COMPILE_FLAGS).
    """

    def __init__(
        self,
        errors: list[str] | None = None,
        warnings: list[str] | None = None,
        used_names: dict[str, bool] | None = None,
    ) -> None:
        super().__init__(errors, warnings, used_names)
        # (line, col_offset) of each entry of self.errors, for the checker's diagnostics.
        self.error_positions: list[tuple[int | None, int | None]] = []

    def error(self, node: ast.AST, info: str) -> None:
        super().error(node, info)
        self.error_positions.append(
            (getattr(node, "lineno", None), getattr(node, "col_offset", None))
        )

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        target = node.target
        if not isinstance(target, ast.Attribute | ast.Subscript):
            return super().visit_AugAssign(node)
        if isinstance(target, ast.Attribute):
            self._check_attribute_name(target)
        operation = IOPERATOR_TO_STR[type(node.op)]
        obj = self.visit(target.value)
        # A slice key (`a[1:3] += b`) stays an ast.Slice: CPython compiles one anywhere, as
        # RestrictedPython's own `_getitem_(a, <slice>)` rewrite relies on.
        key = None if isinstance(target, ast.Attribute) else self.visit(target.slice)
        value = self.visit(node.value)

        obj_name = self.gen_tmp_name()
        statements: list[ast.stmt] = [_assign(obj_name, obj)]
        temporaries = [obj_name]
        written = ast.Call(_load("_write_"), [_load(obj_name)], [])
        if key is None:
            assert isinstance(target, ast.Attribute)
            current = ast.Call(_load("_getattr_"), [_load(obj_name), ast.Constant(target.attr)], [])
            store: ast.expr = ast.Attribute(written, target.attr, ast.Store())
        else:
            key_name = self.gen_tmp_name()
            statements.append(_assign(key_name, key))
            temporaries.append(key_name)
            current = ast.Call(_load("_getitem_"), [_load(obj_name), _load(key_name)], [])
            store = ast.Subscript(written, _load(key_name), ast.Store())
        update = ast.Assign(
            [store], ast.Call(_load("_inplacevar_"), [ast.Constant(operation), current, value], [])
        )
        cleanup = ast.Delete([ast.Name(name, ast.Del()) for name in temporaries])
        statements.append(ast.Try([update], [], [], [cleanup]))
        for statement in statements:
            copy_locations(statement, node)
        return statements

    def _check_attribute_name(self, node: ast.Attribute) -> None:
        """The checks RestrictedPython's visit_Attribute makes, with the same messages."""
        name = node.attr
        if name.startswith("_") and name != "_":
            self.error(node, f'"{name}" is an invalid attribute name because it starts with "_".')
        if name.endswith("__roles__"):
            self.error(
                node, f'"{name}" is an invalid attribute name because it ends with "__roles__".'
            )
        if name in INSPECT_ATTRIBUTES:
            self.error(
                node,
                f'"{name}" is a restricted name, that is forbidden to access in RestrictedPython.',
            )


def _load(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


def _assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign([ast.Name(name, ast.Store())], value)


def compile_policy(source: str, filename: str, restricted: bool) -> CodeType:
    """Compile a policy module, under RestrictedPython when `restricted`.

    Raises SyntaxError for source that does not parse or that RestrictedPython refuses; the
    message lists every "Line N: ..." finding.
    """
    if not restricted:
        return compile(source, filename, "exec", flags=COMPILE_FLAGS, dont_inherit=True)
    result = compile_restricted_exec(source, filename, policy=PolicyTransformer)
    if result.errors:
        raise SyntaxError("policy refused by RestrictedPython:\n" + "\n".join(result.errors))
    assert result.code is not None
    return result.code


# Plain builtins added to RestrictedPython's safe_builtins. None of them reaches attributes by
# name or runs code from strings; see the module docstring for why the iterating ones are fine.
_EXTRA_BUILTINS = (
    "all",
    "any",
    "ascii",
    "bin",
    "classmethod",
    "dict",
    "enumerate",
    "filter",
    "format",
    "frozenset",
    "iter",
    "list",
    "map",
    "max",
    "min",
    "next",
    "NotImplemented",
    "object",
    "property",
    "reversed",
    "set",
    "sorted",
    "staticmethod",
    "sum",
    "tuple",
    "zip",
)


class _StdoutPrint:
    """What RestrictedPython's `print` rewrite calls: plain print to the current sys.stdout
    (the runner redirects and caps it). `printed` reads as "" since nothing is collected."""

    def __init__(self, _getattr_: object = None) -> None:
        pass

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        print(*objects, **kwargs)

    def __call__(self) -> str:
        return ""


def policy_globals(restricted: bool) -> dict[str, Any]:
    """A fresh module namespace to exec a compiled policy in (one per episode).

    Restricted: the guards RestrictedPython's rewritten code calls, and builtins without the
    ones named in FORBIDDEN_BUILTINS. Plain: the real builtins.
    """
    if not restricted:
        return {"__name__": POLICY_MODULE_NAME, "__builtins__": builtins}

    namespace: dict[str, Any] = {}
    guards = make_guards(namespace, policy_classes=set())
    namespace.update(
        __name__=POLICY_MODULE_NAME,
        __builtins__=_policy_builtins(guards),
        __metaclass__=type,
        _getattr_=guards.getattr,
        _getitem_=operator.getitem,
        _getiter_=iter,
        _iter_unpack_sequence_=guarded_iter_unpack_sequence,
        _unpack_sequence_=guarded_unpack_sequence,
        _write_=guards.write,
        _inplacevar_=inplacevar,
        _apply_=apply,
        _print_=_StdoutPrint,
    )
    return namespace


def _policy_builtins(guards: Guards) -> dict[str, Any]:
    """RestrictedPython's safe builtins without the forbidden ones, the plain extras, and the
    guarded versions of the builtins that reach attributes by name or import."""
    policy_builtins: dict[str, Any] = {
        name: value
        for name, value in safe_builtins.items()
        if name not in FORBIDDEN_BUILTINS and not name.startswith("_")
    }
    policy_builtins.update({name: getattr(builtins, name) for name in _EXTRA_BUILTINS})
    policy_builtins.update(
        __build_class__=guards.build_class,
        __import__=guards.import_,
        getattr=guards.getattr,
        hasattr=guards.hasattr,
        setattr=guards.setattr,
        delattr=guards.delattr,
    )
    assert not FORBIDDEN_BUILTINS.keys() & policy_builtins.keys() - {"__import__"}
    return policy_builtins
