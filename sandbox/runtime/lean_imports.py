"""Import OCAtari without the vision stack it never uses in RAM mode.

`import ocatari.core` pulls in OpenCV, scikit-image, SciPy, matplotlib and pygame at module level
(for its vision mode, rendering helpers and type annotations): ~2 s of CPU and ~300 MB of
packages, paid by every sandbox at start-up. RAM mode calls none of them, so while OCAtari is
imported those packages are served as placeholder modules: any attribute is another
placeholder, and calling one raises at once, naming what was called, so an accidental use is
loud, never silently wrong (SciPy is the exception: some games' RAM object matching calls
`scipy.optimize.linear_sum_assignment`, so a call there imports the real function). The
placeholders exist only for OCAtari's import: afterwards they are taken out of `sys.modules`,
and a later `import matplotlib` (the host's plots) gets the real package.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

VISION_PACKAGES = ("cv2", "skimage", "scipy", "matplotlib", "pygame")
# RAM mode does call one of them: Enduro's and a few other games' object matching use
# scipy.optimize.linear_sum_assignment. Calls into these import the real module then.
LAZY_PACKAGES = frozenset({"scipy"})


class VisionUnavailable(RuntimeError):
    """OCAtari reached for its vision stack, which evocade does not load (RAM mode only)."""


class _Placeholder:
    """Stands for any object of a placeholder module: subscriptable, usable as a base class
    or an annotation, and raising `VisionUnavailable` when called."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, name: str) -> _Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{self._name}.{name}")

    def __getitem__(self, key: object) -> _Placeholder:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, attribute = self._name.rpartition(".")
        if module.partition(".")[0] in LAZY_PACKAGES:
            return getattr(importlib.import_module(module), attribute)(*args, **kwargs)
        raise VisionUnavailable(f"{self._name} is not loaded in evocade (OCAtari RAM mode only)")

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (object,)


class _PlaceholderModule(types.ModuleType):
    def __getattr__(self, name: str) -> _Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{self.__name__}.{name}")


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = frozenset(packages)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in self.packages:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _PlaceholderModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@contextlib.contextmanager
def vision_placeholders(packages: Sequence[str] = VISION_PACKAGES) -> Iterator[None]:
    """While inside, `packages` (not yet imported for real) import as placeholders."""
    wanted = [name for name in packages if name not in sys.modules]
    finder = _PlaceholderFinder(wanted)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in list(sys.modules):
            if name.partition(".")[0] in finder.packages and isinstance(
                sys.modules[name], _PlaceholderModule
            ):
                del sys.modules[name]


def import_ocatari() -> Any:
    """`ocatari.core.OCAtari`, imported without the vision stack (see the module docstring)."""
    if "ocatari.core" not in sys.modules:
        with vision_placeholders():
            import ocatari.core  # noqa: F401
    return sys.modules["ocatari.core"].OCAtari
