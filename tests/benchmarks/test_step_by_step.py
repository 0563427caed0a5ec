"""The paper-style step-by-step dump that benchmarks/bench_prompt.py measures our feedback
against (moved out of engine/feedback: evocade itself never sends it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_by_step.py"


def load_script() -> ModuleType:
    """benchmarks/ is a directory of scripts, not a package: load the file by its path."""
    spec = importlib.util.spec_from_file_location("step_by_step", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def box(x: int, y: int, w: int, h: int, dx: int = 0, dy: int = 0) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h, "dx": dx, "dy": dy}


def test_render_step_by_step_one_line_per_step_with_the_full_obs():
    render_step_by_step = load_script().render_step_by_step
    steps = [({"Player": box(140, 100, 4, 15), "Ball": box(80, 90, 2, 4, dx=4)}, 2, 0.0)] * 3
    steps.append(({"Player": box(140, 100, 4, 15)}, 0, -1.0))
    text = render_step_by_step(steps)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("step 0: ") and "'Ball': {'x': 80" in lines[0]
    assert "action=2" in lines[1] and lines[3].endswith("reward=-1")
