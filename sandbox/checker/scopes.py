"""Which binding a name in the policy refers to, so the checker can tell the policy's own
`getattr` or `dir` from the builtin one, and a module alias from a variable of the same name.

Python's rules, as far as the checker needs them: a name bound anywhere in a function (a
parameter, an assignment, an import, a def, ...) is local to it everywhere in it, so the builtin
is out of reach there; a function's other names come from the enclosing functions (never from a
class body), then the module. A module or class body looks its names up when the line runs,
namespace first, then the builtins, so there a name is the policy's own only after a statement
directly in that body has certainly bound it (a def, a class, an import or a plain assignment,
not one inside an `if` or a loop), and only if nothing ever deletes it. Anything less certain
counts as the builtin: `def f(getattr=getattr)` evaluates its default in the enclosing scope,
where `getattr` is the builtin, and so does `x = dir` above the module's own `dir = 1`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from sandbox.policy_rules import ALLOWED_MODULES, load_allowed_module

ScopeKind = Literal["module", "class", "function"]  # comprehensions and lambdas are functions
BindingKind = Literal["import", "import-from", "def", "class", "assign", "delete", "other"]

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_MAX_ALIAS_DEPTH = 20  # `A = B`, `B = C`, ... followed this far when working out what A is


@dataclass(frozen=True)
class Binding:
    """One place a name gets (or loses) its value in a scope."""

    kind: BindingKind
    module: str | None = None  # import, import-from: the module
    attribute: str | None = None  # import-from: the name taken from the module
    value: ast.expr | None = None  # assign: `name = value` with a plain name as the one target
    node: ast.ClassDef | None = None  # class


@dataclass
class Scope:
    kind: ScopeKind
    parent: Scope | None
    body: list[ast.stmt]  # module and class bodies: the statements run in order
    comprehension: bool = False
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PolicyClass:
    """A class the policy defines with a class statement."""

    node: ast.ClassDef


class Scopes:
    """The scopes of one module, and what each name in it refers to."""

    def __init__(self, tree: ast.Module) -> None:
        self.module = Scope("module", None, tree.body)
        self._scope_of: dict[int, Scope] = {}  # id of each ast.Name -> the scope it is in
        self._first_bound: dict[tuple[int, str], ast.stmt | None] = {}
        self.bound_anywhere: set[str] = set()
        _Builder(self.module, self._scope_of, self.bound_anywhere).visit_body(
            tree.body, self.module
        )

    def may_be_builtin(self, node: ast.Name) -> bool:
        """Whether this read of a name can evaluate to the builtin of that name."""
        name = node.id
        scope: Scope | None = self._scope_of.get(id(node), self.module)
        in_function = False  # class bodies are invisible from the functions inside them
        while scope is not None:
            if scope.kind != "module" and name in scope.declared_global:
                scope = self.module
                continue
            if scope.kind == "function":
                if name in scope.bindings or name in scope.declared_nonlocal:
                    return False
                in_function = True
            elif scope.kind == "module" or not in_function:
                if name in scope.bindings and self._bound_before(scope, name, node):
                    return False
                if scope.kind == "module":
                    return True
            scope = scope.parent
        return True

    def imported_module(self, node: ast.Name) -> str | None:
        """The allowed module this read of a name is, when every binding it can come from is
        `import module [as name]` of that one module; None otherwise."""
        bindings = self._bindings_for(node)
        modules = {b.module for b in bindings if b.kind == "import"}
        if bindings and len(modules) == 1 and all(b.kind == "import" for b in bindings):
            module = modules.pop()
            return module if module in ALLOWED_MODULES else None
        return None

    def static_value(self, expr: ast.expr, depth: int = 0) -> object | None:
        """What a simple expression certainly denotes: an allowed module or one of its
        attributes, or a class of the policy's; None when it cannot be told from the source."""
        if depth > _MAX_ALIAS_DEPTH:
            return None
        if isinstance(expr, ast.Attribute):
            base = self.static_value(expr.value, depth + 1)
            if isinstance(base, ModuleType) and not expr.attr.startswith("_"):
                return getattr(base, expr.attr, None)
            return None
        if not isinstance(expr, ast.Name):
            return None
        bindings = self._bindings_for(expr)
        if len(bindings) != 1:
            module = self.imported_module(expr)
            return load_allowed_module(module) if module is not None else None
        return self._binding_value(bindings[0], depth)

    def _binding_value(self, binding: Binding, depth: int) -> object | None:
        if binding.module is not None and binding.module not in ALLOWED_MODULES:
            return None
        if binding.kind == "import" and binding.module is not None:
            return load_allowed_module(binding.module)
        if binding.kind == "import-from" and binding.module and binding.attribute:
            if binding.attribute.startswith("_"):
                return None
            return getattr(load_allowed_module(binding.module), binding.attribute, None)
        if binding.kind == "class" and binding.node is not None:
            return PolicyClass(binding.node)
        if binding.kind == "assign" and binding.value is not None:
            return self.static_value(binding.value, depth + 1)
        return None

    def _bindings_for(self, node: ast.Name) -> list[Binding]:
        """The bindings of the first scope, in lookup order, that binds this name."""
        name = node.id
        scope: Scope | None = self._scope_of.get(id(node), self.module)
        in_function = False
        while scope is not None:
            if scope.kind != "module" and name in scope.declared_global:
                scope = self.module
                continue
            if scope.kind == "function":
                in_function = True
            if name in scope.bindings and (scope.kind != "class" or not in_function):
                return scope.bindings[name]
            scope = scope.parent
        return []

    def _bound_before(self, scope: Scope, name: str, node: ast.Name) -> bool:
        """Whether `name` is certainly bound in a module or class body when `node` runs."""
        key = (id(scope), name)
        if key not in self._first_bound:
            self._first_bound[key] = _first_binding_statement(scope, name)
        first = self._first_bound[key]
        if first is None:
            return False
        position = (node.lineno, node.col_offset)
        if isinstance(first, _FUNCTIONS) and _within(position, first.body):
            return True  # the function's own body runs only after the def has bound it
        return position >= (first.end_lineno or first.lineno, first.end_col_offset or 0)


def _first_binding_statement(scope: Scope, name: str) -> ast.stmt | None:
    """The first statement directly in a module or class body that certainly binds `name`;
    None when there is none, or when the name is ever deleted."""
    if any(binding.kind == "delete" for binding in scope.bindings.get(name, ())):
        return None
    for statement in scope.body:
        if name in _names_bound_by(statement):
            return statement
    return None


def _names_bound_by(statement: ast.stmt) -> set[str]:
    """The names a statement binds whenever it completes."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {statement.name}
    if isinstance(statement, ast.Assign):
        return {name for target in statement.targets for name in _target_names(target)}
    if isinstance(statement, ast.AnnAssign) and statement.value is not None:
        return _target_names(statement.target)
    if isinstance(statement, ast.Import):
        return {alias.asname or alias.name.split(".")[0] for alias in statement.names}
    if isinstance(statement, ast.ImportFrom):
        return {alias.asname or alias.name for alias in statement.names if alias.name != "*"}
    return set()


def _target_names(target: ast.expr) -> set[str]:
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, ast.Tuple | ast.List):
        return {name for element in target.elts for name in _target_names(element)}
    return set()


def _within(position: tuple[int, int], body: list[ast.stmt]) -> bool:
    if not body:
        return False
    start = (body[0].lineno, body[0].col_offset)
    end = (body[-1].end_lineno or body[-1].lineno, body[-1].end_col_offset or 0)
    return start <= position <= end


class _Builder:
    """One pass over the tree that records every scope, binding and name's scope."""

    def __init__(self, module: Scope, scope_of: dict[int, Scope], bound: set[str]) -> None:
        self.module = module
        self.scope_of = scope_of
        self.bound = bound
        self._handlers = self._node_handlers()
        self._binders = self._node_binders()

    def visit_body(self, body: list[ast.stmt], scope: Scope) -> None:
        for statement in body:
            self.visit(statement, scope)

    def visit(self, node: ast.AST, scope: Scope) -> None:
        handler = self._handlers.get(type(node))
        if handler is not None:
            handler(node, scope)
            return
        binder = self._binders.get(type(node))
        if binder is not None:
            binder(node, scope)
        for child in ast.iter_child_nodes(node):
            self.visit(child, scope)

    def _node_handlers(self) -> dict[type[ast.AST], Callable[[Any, Scope], None]]:
        """Nodes that open a scope or need their children visited in a particular way."""
        return {
            ast.Name: self._visit_name,
            ast.FunctionDef: self._visit_function,
            ast.AsyncFunctionDef: self._visit_function,
            ast.Lambda: self._visit_lambda,
            ast.ClassDef: self._visit_class,
            ast.ListComp: self._visit_comprehension,
            ast.SetComp: self._visit_comprehension,
            ast.GeneratorExp: self._visit_comprehension,
            ast.DictComp: self._visit_comprehension,
            ast.Assign: self._visit_assign,
            ast.NamedExpr: self._visit_named_expr,
        }

    def _node_binders(self) -> dict[type[ast.AST], Callable[[Any, Scope], None]]:
        """Nodes that bind or declare names other than through an ast.Name; their children
        are visited as usual."""
        return {
            ast.Global: self._declare_global,
            ast.Nonlocal: self._declare_nonlocal,
            ast.Import: self._bind_import,
            ast.ImportFrom: self._bind_import_from,
            ast.ExceptHandler: self._bind_own_name,
            ast.MatchAs: self._bind_own_name,
            ast.MatchStar: self._bind_own_name,
            ast.MatchMapping: self._bind_rest,
        }

    def _declare_global(self, node: ast.Global, scope: Scope) -> None:
        scope.declared_global.update(node.names)

    def _declare_nonlocal(self, node: ast.Nonlocal, scope: Scope) -> None:
        scope.declared_nonlocal.update(node.names)

    def _bind_import(self, node: ast.Import, scope: Scope) -> None:
        for alias in node.names:
            dotted = "." in alias.name and not alias.asname
            module = alias.name.split(".")[0] if dotted else alias.name
            self._bind(scope, alias.asname or module, Binding("import", module=module))

    def _bind_import_from(self, node: ast.ImportFrom, scope: Scope) -> None:
        module = node.module if not node.level else None
        for alias in node.names:
            if alias.name != "*":
                binding = Binding("import-from", module=module, attribute=alias.name)
                self._bind(scope, alias.asname or alias.name, binding)

    def _bind_own_name(
        self, node: ast.ExceptHandler | ast.MatchAs | ast.MatchStar, scope: Scope
    ) -> None:
        if node.name:
            self._bind(scope, node.name, Binding("other"))

    def _bind_rest(self, node: ast.MatchMapping, scope: Scope) -> None:
        if node.rest:
            self._bind(scope, node.rest, Binding("other"))

    def _visit_lambda(self, node: ast.Lambda, scope: Scope) -> None:
        self._visit_arguments_defaults(node.args, scope)
        inner = Scope("function", scope, [])
        self._bind_parameters(node.args, inner)
        self.visit(node.body, inner)

    def _visit_named_expr(self, node: ast.NamedExpr, scope: Scope) -> None:
        self.visit(node.value, scope)
        # `(name := ...)` in a comprehension binds in the scope around the comprehension.
        target = scope
        while target.comprehension and target.parent is not None:
            target = target.parent
        self._visit_name(node.target, target)

    def _visit_name(self, node: ast.Name, scope: Scope, binding: Binding | None = None) -> None:
        self.scope_of[id(node)] = scope
        if isinstance(node.ctx, ast.Store):
            self._bind(scope, node.id, binding or Binding("other"))
        elif isinstance(node.ctx, ast.Del):
            self._bind(scope, node.id, Binding("delete"))

    def _visit_assign(self, node: ast.Assign, scope: Scope) -> None:
        self.visit(node.value, scope)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            self._visit_name(node.targets[0], scope, Binding("assign", value=node.value))
            return
        for target in node.targets:
            self.visit(target, scope)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator, scope)
        self._visit_arguments_defaults(node.args, scope)
        for annotation in _annotations(node.args):
            self.visit(annotation, scope)
        if node.returns is not None:
            self.visit(node.returns, scope)
        self._bind(scope, node.name, Binding("def"))
        inner = Scope("function", scope, node.body)
        self._bind_parameters(node.args, inner)
        self.visit_body(node.body, inner)

    def _visit_class(self, node: ast.ClassDef, scope: Scope) -> None:
        for expression in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expression, scope)
        self._bind(scope, node.name, Binding("class", node=node))
        self.visit_body(node.body, Scope("class", scope, node.body))

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, scope: Scope
    ) -> None:
        inner = Scope("function", scope, [], comprehension=True)
        for index, generator in enumerate(node.generators):
            # The first iterable is evaluated in the enclosing scope, the rest inside.
            self.visit(generator.iter, scope if index == 0 else inner)
            self.visit(generator.target, inner)
            for condition in generator.ifs:
                self.visit(condition, inner)
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            self.visit(part, inner)

    def _visit_arguments_defaults(self, arguments: ast.arguments, scope: Scope) -> None:
        for default in [*arguments.defaults, *arguments.kw_defaults]:
            if default is not None:
                self.visit(default, scope)

    def _bind_parameters(self, arguments: ast.arguments, inner: Scope) -> None:
        for arg in parameters(arguments):
            self._bind(inner, arg.arg, Binding("other"))

    def _bind(self, scope: Scope, name: str, binding: Binding) -> None:
        if scope.kind != "module" and name in scope.declared_global:
            scope = self.module
        scope.bindings.setdefault(name, []).append(binding)
        self.bound.add(name)


def parameters(arguments: ast.arguments) -> list[ast.arg]:
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    return every + [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]


def _annotations(arguments: ast.arguments) -> list[ast.expr]:
    return [arg.annotation for arg in parameters(arguments) if arg.annotation is not None]
