"""Compile a policy and build the namespace it runs in, inside the sandbox.

With checking on, a policy is compiled by RestrictedPython, which rewrites every attribute read
into `_getattr_(obj, "name")`, every item read into `_getitem_`, every attribute or item write
into `_write_(obj)...`, every loop into `_getiter_`, and so on; this module supplies those guards.
With checking off it is compiled and run as plain Python. Either way the OS sandbox is the wall
(docs/DESIGN.md §4); the guards make the usual escapes fail with a clear exception.

The rules (allowed modules, forbidden builtins, blocked module attributes) come from
`sandbox.policy_rules`, which the host-side checker uses too. This module imports only the
standard library, RestrictedPython and `sandbox.policy_rules`, as the sandbox image requires.

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
import collections
import operator
from collections.abc import Callable
from types import CodeType, FunctionType, ModuleType
from typing import Any

from RestrictedPython import compile_restricted_exec, safe_builtins
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
    safer_getattr_raise,
)
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

from sandbox.policy_rules import (
    ALLOWED_MODULES,
    FORBIDDEN_ATTRIBUTES,
    FORBIDDEN_BUILTINS,
    METACLASS_REASON,
    allowed_modules_text,
    forbidden_objects,
    is_metaclass,
    load_allowed_module,
    module_attribute_problem,
    template_looks_up_fields,
)

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

_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "@=": operator.imatmul,
}

# Containers a policy may always modify (and their subclasses: Counter, defaultdict, ...).
_WRITABLE_TYPES = (dict, list, set, collections.deque)

_MISSING = object()


def _checked_format(template: str, method: str) -> Callable[..., str]:
    """`template.format` / `template.format_map`, refusing templates that look fields up: the
    lookup happens in C, around `_getattr_` (`"{0.__class__}".format(x)`)."""
    bound = getattr(template, method)

    def formatted(*args: Any, **kwargs: Any) -> str:
        if template_looks_up_fields(template):
            raise ValueError(
                f"str.{method} templates may not read attributes or items, as in '{{0.x}}' or "
                "'{0[1]}'; format the value with an f-string instead"
            )
        return bound(*args, **kwargs)

    return formatted


def _check_attribute_name(name: object) -> str:
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_"):
        raise AttributeError(f'"{name}" is an invalid attribute name because it starts with "_"')
    return name


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
    policy_classes: set[type] = set()
    blocked = forbidden_objects()
    # The forbidden builtins themselves, however they are reached: never handed out by an
    # attribute read. And `type.mro` unbound, which is what `enum.EnumType.mro` and
    # `typing.Type.mro` give: `enum.EnumType.mro(enum.EnumType)[1]` is `type` itself.
    # (`int.mro()`, bound to an ordinary class, lists nothing but ordinary classes.)
    for name, reason in FORBIDDEN_BUILTINS.items():
        if hasattr(builtins, name):
            blocked[id(getattr(builtins, name))] = (
                f"{name}() is not available to policies: {reason}"
            )
    blocked[id(type.__dict__["mro"])] = (
        f"the attribute 'mro' of a metaclass is not allowed: {FORBIDDEN_ATTRIBUTES['mro']}"
    )

    def guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
        if type(name) is not str:
            raise TypeError("attribute name must be a str")
        if isinstance(obj, str) and name in ("format", "format_map"):
            return _checked_format(obj, name)
        if isinstance(obj, ModuleType) and not name.startswith("_"):
            problem = module_attribute_problem(obj, name)
            if problem is not None:
                raise AttributeError(problem)
        if default is _MISSING:
            value = safer_getattr_raise(obj, name)
        else:
            value = safer_getattr(obj, name, default)
        if isinstance(value, ModuleType) and value.__name__ not in ALLOWED_MODULES:
            raise AttributeError(f"the module {value.__name__!r} is not available to policies")
        problem = blocked.get(id(value))
        if problem is not None:
            raise AttributeError(problem)
        if is_metaclass(value):  # enum.EnumType however reached, typing.ABCMeta, ...
            raise AttributeError(
                f"the metaclass {value.__name__!r} is not allowed: {METACLASS_REASON}"
            )
        return value

    def guarded_hasattr(obj: Any, name: str) -> bool:
        try:
            guarded_getattr(obj, name)
        except AttributeError:
            return False
        return True

    def write_guard(obj: Any) -> Any:
        if (
            isinstance(obj, _WRITABLE_TYPES)
            or type(obj) in policy_classes
            or (isinstance(obj, type) and obj in policy_classes)
            or (isinstance(obj, FunctionType) and obj.__globals__ is namespace)
        ):
            return obj
        raise TypeError(
            f"a policy may not modify {type(obj).__name__} objects: only the dicts, lists, sets, "
            "deques, class instances and functions it created itself"
        )

    def guarded_setattr(obj: Any, name: str, value: Any) -> None:
        setattr(write_guard(obj), _check_attribute_name(name), value)

    def guarded_delattr(obj: Any, name: str) -> None:
        delattr(write_guard(obj), _check_attribute_name(name))

    def guarded_import(
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: tuple[str, ...] | None = (),
        level: int = 0,
    ) -> ModuleType:
        if level != 0:
            raise ImportError("relative imports are not allowed: a policy is a single module")
        if name not in ALLOWED_MODULES:
            raise ImportError(
                f"import of {name!r} is not allowed in a policy; allowed modules: "
                f"{allowed_modules_text()}"
            )
        module = load_allowed_module(name)
        for attribute in fromlist or ():
            if type(attribute) is not str or attribute.startswith("_"):
                raise ImportError(f"cannot import {attribute!r} from {name!r} in a policy")
            problem = module_attribute_problem(module, attribute) or blocked.get(
                id(getattr(module, attribute, None))
            )
            if problem is not None:
                raise ImportError(problem)
        return module

    def build_class(func: Callable[[], None], name: str, *bases: Any, **kwargs: Any) -> type:
        cls = builtins.__build_class__(func, name, *bases, **kwargs)
        policy_classes.add(cls)
        return cls

    def inplacevar(operation: str, target: Any, value: Any) -> Any:
        return _INPLACE_OPERATORS[operation](target, value)

    def apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    policy_builtins: dict[str, Any] = {
        name: value
        for name, value in safe_builtins.items()
        if name not in FORBIDDEN_BUILTINS and not name.startswith("_")
    }
    policy_builtins.update({name: getattr(builtins, name) for name in _EXTRA_BUILTINS})
    policy_builtins.update(
        __build_class__=build_class,
        __import__=guarded_import,
        getattr=guarded_getattr,
        hasattr=guarded_hasattr,
        setattr=guarded_setattr,
        delattr=guarded_delattr,
    )
    assert not FORBIDDEN_BUILTINS.keys() & policy_builtins.keys() - {"__import__"}

    namespace.update(
        __name__=POLICY_MODULE_NAME,
        __builtins__=policy_builtins,
        __metaclass__=type,
        _getattr_=guarded_getattr,
        _getitem_=operator.getitem,
        _getiter_=iter,
        _iter_unpack_sequence_=guarded_iter_unpack_sequence,
        _unpack_sequence_=guarded_unpack_sequence,
        _write_=write_guard,
        _inplacevar_=inplacevar,
        _apply_=apply,
        _print_=_StdoutPrint,
    )
    return namespace
