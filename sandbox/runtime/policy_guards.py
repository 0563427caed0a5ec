"""The guards RestrictedPython's rewritten policy code calls, built fresh for each namespace.

`sandbox.runtime.restricted_env.policy_globals` puts them in a policy's module namespace and
builtins. Each guard is a plain closure over what it checks against (the blocked objects, the
namespace, the policy's own classes): nothing a policy can reach holds the host's state. Why
each one deviates from RestrictedPython's stock helper is in restricted_env's docstring.
"""

from __future__ import annotations

import builtins
import collections
import operator
from collections.abc import Callable
from dataclasses import dataclass
from types import FunctionType, ModuleType
from typing import Any

from RestrictedPython.Guards import safer_getattr, safer_getattr_raise

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


@dataclass(frozen=True)
class Guards:
    """One namespace's guards: the builtins that replace Python's, and what `_write_` calls."""

    getattr: Callable[..., Any]
    hasattr: Callable[[Any, str], bool]
    write: Callable[[Any], Any]
    setattr: Callable[[Any, str, Any], None]
    delattr: Callable[[Any, str], None]
    import_: Callable[..., ModuleType]
    build_class: Callable[..., type]


def make_guards(namespace: dict[str, Any], policy_classes: set[type]) -> Guards:
    """The guards of one policy namespace; `policy_classes` collects the classes it defines."""
    blocked = blocked_objects()
    guarded_getattr = _make_getattr(blocked)
    write_guard, guarded_setattr, guarded_delattr = _make_write_guards(namespace, policy_classes)
    return Guards(
        getattr=guarded_getattr,
        hasattr=_make_hasattr(guarded_getattr),
        write=write_guard,
        setattr=guarded_setattr,
        delattr=guarded_delattr,
        import_=_make_import(blocked),
        build_class=_make_build_class(policy_classes),
    )


def blocked_objects() -> dict[int, str]:
    """id -> reason of every object an attribute read or an import must never hand out.

    `policy_rules.forbidden_objects`, plus the forbidden builtins themselves, however they are
    reached, and `type.mro` unbound, which is what `enum.EnumType.mro` and `typing.Type.mro`
    give: `enum.EnumType.mro(enum.EnumType)[1]` is `type` itself. (`int.mro()`, bound to an
    ordinary class, lists nothing but ordinary classes.)
    """
    blocked = forbidden_objects()
    for name, reason in FORBIDDEN_BUILTINS.items():
        if hasattr(builtins, name):
            blocked[id(getattr(builtins, name))] = (
                f"{name}() is not available to policies: {reason}"
            )
    blocked[id(type.__dict__["mro"])] = (
        f"the attribute 'mro' of a metaclass is not allowed: {FORBIDDEN_ATTRIBUTES['mro']}"
    )
    return blocked


def _make_getattr(blocked: dict[int, str]) -> Callable[..., Any]:
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

    return guarded_getattr


def _make_hasattr(guarded_getattr: Callable[..., Any]) -> Callable[[Any, str], bool]:
    def guarded_hasattr(obj: Any, name: str) -> bool:
        try:
            guarded_getattr(obj, name)
        except AttributeError:
            return False
        return True

    return guarded_hasattr


def _make_write_guards(
    namespace: dict[str, Any], policy_classes: set[type]
) -> tuple[Callable[[Any], Any], Callable[[Any, str, Any], None], Callable[[Any, str], None]]:
    """`_write_`, `setattr` and `delattr`: a policy modifies only what it made itself."""

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

    return write_guard, guarded_setattr, guarded_delattr


def _make_import(blocked: dict[int, str]) -> Callable[..., ModuleType]:
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

    return guarded_import


def _make_build_class(policy_classes: set[type]) -> Callable[..., type]:
    def build_class(func: Callable[[], None], name: str, *bases: Any, **kwargs: Any) -> type:
        cls = builtins.__build_class__(func, name, *bases, **kwargs)
        policy_classes.add(cls)
        return cls

    return build_class


def inplacevar(operation: str, target: Any, value: Any) -> Any:
    """`_inplacevar_`: what `x op= y` on an attribute or item computes."""
    return _INPLACE_OPERATORS[operation](target, value)


def apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`_apply_`: a call with `*args`/`**kwargs`, made as Python makes it."""
    return func(*args, **kwargs)


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
