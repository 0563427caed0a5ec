"""Inline SVG for the web view: sparklines, score curves and the clickable lineage tree.

Built as strings because they are small and exact; every piece of text and every attribute
value goes through `markupsafe.escape`, and the result is returned as `Markup` so the
templates (autoescape on) insert it as is. Nothing here needs a script to display.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from engine.series import RunSeries

STATUS_COLOURS = {
    "ok": "#2b8a3e",
    "rejected": "#868e96",
    "error": "#e8590c",
    "timeout": "#f08c00",
    "memory": "#c2255c",
    "invalid_action": "#d6336c",
    "crashed": "#c92a2a",
    None: "#adb5bd",
}


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    if high == low:
        return (start + end) / 2
    return start + (value - low) / (high - low) * (end - start)


def sparkline(series: RunSeries, width: int = 120, height: int = 24) -> Markup:
    """The run's best-so-far as a small polyline (an empty box when nothing scored)."""
    values = [(p.iteration, p.best_so_far) for p in series.points if p.best_so_far is not None]
    box = f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
    label = escape(f"best so far of run {series.label}")
    if not values:
        return Markup(f'{box} role="img" aria-label="{label}: no score yet"></svg>')
    xs = [x for x, _ in values]
    ys = [y for _, y in values]
    last = max(xs) if max(xs) > min(xs) else min(xs) + 1
    points = " ".join(
        f"{_scale(x, min(xs), last, 2, width - 2):.1f},"
        f"{_scale(y, min(ys), max(ys), height - 3, 3):.1f}"
        for x, y in values
    )
    return Markup(
        f'{box} role="img" aria-label="{label}">'
        f'<polyline fill="none" stroke="#1971c2" stroke-width="1.5" points="{points}"/></svg>'
    )


def score_curve(series: RunSeries, width: int = 720, height: int = 240) -> Markup:
    """Per-program training scores (dots), best so far (line), held-out (squares, dashed)."""
    scored = [p for p in series.points if p.score is not None]
    held = [p for p in series.points if p.heldout is not None]
    if not scored and not held:
        return Markup('<p class="muted">No program of this run has a full score yet.</p>')
    values = [p.score for p in scored if p.score is not None] + [
        p.heldout for p in held if p.heldout is not None
    ]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.08, 0.5)
    low, high = low - pad, high + pad
    left, right, top, bottom = 52, width - 12, 12, height - 30
    count = max(len(series.points) - 1, 1)

    def x(iteration: int) -> float:
        return _scale(iteration, 0, count, left, right)

    def y(value: float) -> float:
        return _scale(value, low, high, bottom, top)

    parts = [
        f'<svg class="curve" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape("score per iteration of run " + series.label)}">',
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" class="axis"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{high:.1f}</text>',
        f'<text x="{left - 6}" y="{bottom}" text-anchor="end">{low:.1f}</text>',
        f'<text x="{left}" y="{height - 10}">0</text>',
        f'<text x="{right}" y="{height - 10}" text-anchor="end">iteration {count}</text>',
    ]
    for name, attribute, dashed in (
        ("best", "best_so_far", ""),
        ("heldout-best", "heldout_best_so_far", ' stroke-dasharray="5 3"'),
    ):
        steps = _step_points(series, attribute, x, y)
        if steps:
            parts.append(
                f'<polyline class="{name}" fill="none"{dashed} points="{" ".join(steps)}"/>'
            )
    for point in scored:
        assert point.score is not None
        tip = escape(f"iteration {point.iteration}: {point.score:+.2f}")
        parts.append(
            f'<a href="/program/{escape(point.program_id)}"><circle class="score" '
            f'cx="{x(point.iteration):.1f}" cy="{y(point.score):.1f}" r="3.5">'
            f"<title>{tip}</title></circle></a>"
        )
    for point in held:
        assert point.heldout is not None
        tip = escape(f"iteration {point.iteration}: held-out {point.heldout:+.2f}")
        parts.append(
            f'<rect class="heldout" x="{x(point.iteration) - 3.5:.1f}" '
            f'y="{y(point.heldout) - 3.5:.1f}" width="7" height="7"><title>{tip}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _step_points(
    series: RunSeries,
    attribute: str,
    x: Callable[[int], float],
    y: Callable[[float], float],
) -> list[str]:
    """A staircase through the points' `attribute` (a best-so-far: flat until it improves),
    as SVG polyline points; points without a value are skipped."""
    steps: list[str] = []
    previous: float | None = None
    for point in series.points:
        value = getattr(point, attribute)
        if value is None:
            continue
        if previous is not None:
            steps.append(f"{x(point.iteration):.1f},{y(previous):.1f}")
        steps.append(f"{x(point.iteration):.1f},{y(value):.1f}")
        previous = value
    return steps


@dataclass(frozen=True)
class TreeNode:
    program_id: str
    parent_id: str | None
    label: str  # e.g. "1a2b3c4d +3.00"
    status: str | None
    is_head: bool = False


def _tree_layout(
    nodes: Sequence[TreeNode], by_id: dict[str, TreeNode]
) -> tuple[dict[str, float], dict[str, int], int]:
    """Each program's column and depth, and how many leaf columns there are: a depth-first
    walk gives every leaf its own column, a parent sits above the middle of its children."""
    children: dict[str | None, list[TreeNode]] = defaultdict(list)
    for node in nodes:
        parent = node.parent_id if node.parent_id in by_id else None
        children[parent].append(node)
    column: dict[str, float] = {}
    depth: dict[str, int] = {}
    next_leaf = 0
    # iterative post-order walk (a 10,000-deep chain must not hit the recursion limit)
    for root in children[None]:
        stack: list[tuple[TreeNode, int, bool]] = [(root, 0, False)]
        while stack:
            node, level, expanded = stack.pop()
            kids = children.get(node.program_id, [])
            if not expanded:
                depth[node.program_id] = level
                stack.append((node, level, True))
                stack.extend((kid, level + 1, False) for kid in reversed(kids))
                continue
            if kids:
                column[node.program_id] = sum(column[k.program_id] for k in kids) / len(kids)
            else:
                column[node.program_id] = next_leaf
                next_leaf += 1
    return column, depth, next_leaf


def lineage_tree(nodes: Sequence[TreeNode], *, column_px: int = 92, row_px: int = 54) -> Markup:
    """The run's programs as a tree, roots at the top; each node links to its program page.

    Layout: a depth-first walk gives every leaf its own column, a parent sits above the middle
    of its children, each generation one row lower.
    """
    if not nodes:
        return Markup('<p class="muted">This run has no programs yet.</p>')
    by_id = {node.program_id: node for node in nodes}
    column, depth, leaves = _tree_layout(nodes, by_id)
    width = int(max(leaves, 1) * column_px + 20)
    height = int((max(depth.values()) + 1) * row_px + 20)

    def centre(program_id: str) -> tuple[float, float]:
        return (
            10 + column[program_id] * column_px + column_px / 2,
            10 + depth[program_id] * row_px + 16,
        )

    parts = [
        f'<svg class="lineage" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage tree">'
    ]
    for node in nodes:
        parent = node.parent_id if node.parent_id in by_id else None
        if parent is not None:
            (x1, y1), (x2, y2) = centre(parent), centre(node.program_id)
            parts.append(
                f'<line class="edge" x1="{x1:.1f}" y1="{y1 + 12:.1f}" '
                f'x2="{x2:.1f}" y2="{y2 - 12:.1f}"/>'
            )
    for node in nodes:
        cx, cy = centre(node.program_id)
        colour = STATUS_COLOURS.get(node.status, STATUS_COLOURS[None])
        head = " head" if node.is_head else ""
        short, _, score = node.label.partition(" ")
        parts.append(
            f'<a class="node{head}" href="/program/{escape(node.program_id)}">'
            f'<rect x="{cx - 42:.1f}" y="{cy - 12:.1f}" width="84" height="26" rx="5" '
            f'fill="{colour}"/>'
            f'<text x="{cx:.1f}" y="{cy - 1:.1f}" text-anchor="middle">{escape(short)}</text>'
            f'<text x="{cx:.1f}" y="{cy + 10:.1f}" text-anchor="middle" class="small">'
            f"{escape(score)}</text>"
            f"<title>{escape(node.label)} ({escape(node.status or 'not evaluated')})</title></a>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
