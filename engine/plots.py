"""`evocade plot`: score per iteration and best so far, against iterations and env steps.

Several runs share one figure (one colour each) so they can be compared; held-out scores, when
a run has them, are drawn in the run's colour with square markers and a dashed best-so-far.
Rendered with matplotlib's Agg backend: no display is ever needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.series import RunSeries, ScorePoint
from engine.textsafe import safe_line

PLOT_FORMATS = (".png", ".svg")


class PlotError(ValueError):
    """A figure that cannot be made (unknown format, nothing to draw, unwritable path)."""


def plot_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise PlotError(f"{path.name}: the output must end in .png or .svg")
    return suffix


def plot_runs(series: Sequence[RunSeries], path: Path) -> None:
    """Draw the runs' curves into `path` (.png or .svg)."""
    suffix = plot_format(path)
    if not any(point.score is not None for run in series for point in run.points):
        raise PlotError("no run has a scored program yet: nothing to plot")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    by_iteration, by_steps = figure.subplots(1, 2, sharey=True)
    colours = matplotlib.colormaps["tab10"]
    for index, run in enumerate(series):
        colour = colours(index % 10)
        label = safe_line(run.label)  # a stored game name: no raw control character in XML
        for axes, x_of in ((by_iteration, _iteration), (by_steps, _steps)):
            _curve(axes, run.points, x_of, colour, "score", "best_so_far", f"{label} best so far")
            if run.has_heldout:
                _curve(
                    axes,
                    run.points,
                    x_of,
                    colour,
                    "heldout",
                    "heldout_best_so_far",
                    f"{label} held-out best",
                    held_out=True,
                )
    from matplotlib.ticker import MaxNLocator

    by_iteration.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_iteration.set_xlabel("iteration (program, in creation order)")
    by_iteration.set_ylabel("mean return (training seeds; dots: each program)")
    by_steps.set_xlabel("env steps played by the run")
    for axes in (by_iteration, by_steps):
        axes.grid(alpha=0.3)
    by_iteration.legend(fontsize="small", loc="lower right")
    figure.suptitle("score per iteration and best so far")
    try:
        # SVG keeps its labels as text (searchable, selectable, smaller) instead of glyph paths
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            figure.savefig(path, format=suffix[1:], dpi=110)
    except OSError as error:
        raise PlotError(f"cannot write {path}: {error.strerror or error}") from error


def _curve(
    axes: Any,
    points: Sequence[ScorePoint],
    x_of: Callable[[ScorePoint], float],
    colour: Any,
    score: str,
    best: str,
    label: str,
    *,
    held_out: bool = False,
) -> None:
    """One run's scores (`score`: dots, squares when `held_out`) and its best so far (`best`:
    a step line, dashed when `held_out`); points without a value are left out."""
    scored = [p for p in points if getattr(p, score) is not None]
    marker: dict[str, Any] = (
        {"marker": "s", "s": 22, "facecolors": "none"}
        if held_out
        else {
            "s": 14,
            "alpha": 0.5,
        }
    )
    axes.scatter(
        [x_of(p) for p in scored], [getattr(p, score) for p in scored], color=colour, **marker
    )
    improving = [p for p in points if getattr(p, best) is not None]
    axes.step(
        [x_of(p) for p in improving],
        [getattr(p, best) for p in improving],
        where="post",
        color=colour,
        linestyle="--" if held_out else "-",
        label=label,
    )


def _iteration(point: ScorePoint) -> float:
    return float(point.iteration)


def _steps(point: ScorePoint) -> float:
    return float(point.env_steps)
