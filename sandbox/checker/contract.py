"""The act contract (docs/DESIGN.md §2): one top-level `def act(obs):` that returns an action."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from sandbox.checker.diagnostics import Findings


def top_level_acts(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        statement
        for statement in tree.body
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and statement.name == "act"
    ]


def check_act(tree: ast.Module, findings: Findings) -> None:
    top_level = top_level_acts(tree)
    if not top_level:
        findings.add("no-act", None, _no_act_message(tree))
        return
    act = top_level[-1]  # the last definition is the one the module ends up with
    if isinstance(act, ast.AsyncFunctionDef):
        findings.add(
            "act-signature",
            act,
            "act must be a plain `def act(obs):`, not `async def`: the runner calls act(obs) "
            "and needs an int back, not a coroutine",
        )
    arguments = act.args
    positional = [*arguments.posonlyargs, *arguments.args]
    if len(positional) != 1 or arguments.vararg or arguments.kwarg or arguments.kwonlyargs:
        findings.add(
            "act-signature",
            act,
            "act must take exactly one parameter, the observation dict: `def act(obs):`; "
            f"found `def act({ast.unparse(arguments)}):`. Keep state between steps in "
            "module-level variables (updated with `global name`) instead of extra parameters",
        )
    for node in _own_nodes(act):
        if isinstance(node, ast.Yield | ast.YieldFrom):
            findings.add(
                "act-signature",
                node,
                "act contains `yield`, which makes it a generator, not a function that "
                "returns an action; use `return action` instead",
            )
            break


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
