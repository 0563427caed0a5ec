"""sandbox/'s layering (docs/DESIGN.md §1), as storage's is enforced in tests/storage/:

- `sandbox` imports neither `engine` nor `storage`;
- what runs inside the sandbox image (`sandbox/runtime/`, and the first-party modules it
  imports) imports only the standard library and what the Dockerfile installs in the image:
  the emulator stack, RestrictedPython and pyseccomp. No pydantic, no checker: the image has
  neither, and a runtime module that needed one would fail there, not here.

The static checks read every import statement (those inside functions too), so a lazy import
cannot hide; the subprocess checks import the modules for real, and catch what a module pulls
in indirectly.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "sandbox"
RUNTIME = SANDBOX / "runtime"


def module_name(path: Path) -> str:
    """The dotted name of a file or package directory under the repository root."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, as absolute names (relative imports resolved)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            prefix = ".".join(base) if node.level else ""
            module = ".".join(part for part in (prefix, node.module or "") if part)
            found.add(module)
            # `from sandbox import policy_rules` imports the submodule sandbox.policy_rules.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def first_party_file(module: str) -> Path | None:
    """The file of a sandbox module, or None for anything else (or a name that is no module)."""
    if module.split(".")[0] != "sandbox":
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def runtime_closure() -> dict[Path, set[str]]:
    """sandbox/runtime/'s files and every first-party file they import, transitively (package
    __init__ files included: importing `sandbox.runtime.x` runs `sandbox/__init__.py`)."""
    pending = [*sorted(RUNTIME.glob("*.py")), SANDBOX / "__init__.py"]
    seen: dict[Path, set[str]] = {}
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen[path] = imported_modules(path)
        for module in seen[path]:
            file = first_party_file(module)
            if file is not None:
                pending.append(file)
    return seen


def image_distributions() -> set[str]:
    """The distributions the Dockerfile installs into the image's venv (normalized names)."""
    text = (ROOT / "Dockerfile").read_text()
    names = re.findall(r'"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:[<>=!~][^"]*)?"', text)
    return {normalize(name) for name in names}


def normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_imports_sandbox_never_imports_engine_or_storage_statically() -> None:
    offenders = sorted(
        f"{path.relative_to(ROOT)}: {module}"
        for path in SANDBOX.rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in ("engine", "storage")
    )
    assert offenders == []


def test_imports_sandbox_never_pulls_in_engine_or_storage() -> None:
    modules = [module_name(path) for path in SANDBOX.rglob("*.py")]
    loaded = loaded_after_importing(modules)
    assert sorted(m for m in loaded if m.split(".")[0] in ("engine", "storage")) == []


def test_imports_dockerfile_lists_the_image_requirements() -> None:
    # The parsing below must find the runtime's real dependencies, or the next test proves nothing.
    assert {"numpy", "gymnasium", "ale-py", "restrictedpython", "pyseccomp", "ocatari"} <= (
        image_distributions()
    )
    assert "pydantic" not in image_distributions()


def test_imports_runtime_uses_only_stdlib_and_the_image_requirements() -> None:
    allowed = image_distributions()
    distributions = importlib.metadata.packages_distributions()
    offenders = []
    for path, modules in sorted(runtime_closure().items()):
        for module in sorted(modules):
            top = module.split(".")[0]
            if top == "__future__" or top in sys.stdlib_module_names:
                continue
            if top == "sandbox":
                continue  # followed by runtime_closure, checked as its own file
            owners = {normalize(name) for name in distributions.get(top, [])}
            if not owners & allowed:
                offenders.append(f"{path.relative_to(ROOT)}: {module} ({sorted(owners) or '?'})")
    assert offenders == []


def test_imports_runtime_first_party_modules_stay_out_of_host_only_code() -> None:
    host_only = ("sandbox.checker", "sandbox.results", "sandbox.settings", "sandbox.backends")
    offenders = sorted(
        f"{path.relative_to(ROOT)}: {module}"
        for path, modules in runtime_closure().items()
        for module in modules
        if module.startswith(host_only)
    )
    assert offenders == []


def test_imports_runtime_never_pulls_in_pydantic_or_the_checker() -> None:
    loaded = loaded_after_importing([module_name(path) for path in RUNTIME.glob("*.py")])
    banned = ("pydantic", "sqlalchemy", "docker", "openai", "engine", "storage")
    offenders = [m for m in loaded if m.split(".")[0] in banned or m.startswith("sandbox.checker")]
    assert sorted(offenders) == []


def loaded_after_importing(modules: list[str]) -> set[str]:
    """sys.modules of a fresh interpreter after importing `modules`."""
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_host_code_converts_source_to_ast_only_under_the_lock() -> None:
    """CPython 3.11 corrupts the AST converter's shared recursion depth when two threads convert
    at once (`SystemError: AST constructor recursion depth mismatch`), and the engine checks,
    extracts and mutates programs from several threads: outside the policy's own process
    (sandbox/runtime), `ast.parse` and `compile()` of a tree happen in
    sandbox/checker/parsing.py alone, under its lock."""
    offenders = []
    for package in ("engine", "sandbox", "storage"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith("sandbox/runtime/") or relative == "sandbox/checker/parsing.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), relative)):
                if not isinstance(node, ast.Call):
                    continue
                function = node.func
                direct_parse = (
                    isinstance(function, ast.Attribute)
                    and function.attr == "parse"
                    and isinstance(function.value, ast.Name)
                    and function.value.id == "ast"
                )
                builtin_compile = isinstance(function, ast.Name) and function.id == "compile"
                if direct_parse or builtin_compile:
                    offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []
