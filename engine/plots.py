"""`evocade plot`: score per iteration and best so far, against iterations and env steps.

Several runs share one figure (one colour each) so they can be compared; held-out scores, when
a run has them, are drawn in the run's colour with square markers and a dashed best-so-far.
Rendered with matplotlib's Agg backend: no display is ever needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.series import RunSeries, ScorePoint

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
        for axes, x_of in ((by_iteration, _iteration), (by_steps, _steps)):
            scored = [p for p in run.points if p.score is not None]
            axes.scatter(
                [x_of(p) for p in scored], [p.score for p in scored], color=colour, s=14, alpha=0.5
            )
            best = [p for p in run.points if p.best_so_far is not None]
            axes.step(
                [x_of(p) for p in best],
                [p.best_so_far for p in best],
                where="post",
                color=colour,
                label=f"{run.label} best so far",
            )
            if run.has_heldout:
                held = [p for p in run.points if p.heldout is not None]
                axes.scatter(
                    [x_of(p) for p in held],
                    [p.heldout for p in held],
                    color=colour,
                    marker="s",
                    s=22,
                    facecolors="none",
                )
                held_best = [p for p in run.points if p.heldout_best_so_far is not None]
                axes.step(
                    [x_of(p) for p in held_best],
                    [p.heldout_best_so_far for p in held_best],
                    where="post",
                    color=colour,
                    linestyle="--",
                    label=f"{run.label} held-out best",
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
        figure.savefig(path, format=suffix[1:], dpi=110)
    except OSError as error:
        raise PlotError(f"cannot write {path}: {error.strerror or error}") from error


def _iteration(point: ScorePoint) -> float:
    return float(point.iteration)


def _steps(point: ScorePoint) -> float:
    return float(point.env_steps)
