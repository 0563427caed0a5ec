"""Where the object that got past the Player was, from the boxes in a few snapshots.

Generic over games: it only assumes an object called "Player" (when there is one) and boxes
`{x, y, w, h, dx, dy}`. When the Player keeps one coordinate fixed (a paddle), objects that
cross that line are what it must meet, and the distance along the other axis is the miss;
otherwise the closest approach is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.results import Snapshot, Trace

PLAYER = "Player"

Axis = Literal["x", "y"]
Side = Literal["above", "below", "left of", "right of", "at"]

_SIDES: dict[Axis, tuple[Side, Side]] = {"y": ("above", "below"), "x": ("left of", "right of")}


@dataclass(frozen=True)
class Box:
    x0: float
    x1: float
    y0: float
    y1: float
    dx: float
    dy: float


@dataclass(frozen=True)
class Miss:
    """Where the object that got past the Player was, relative to it."""

    target: str
    step: int
    axis: Axis  # the axis the gap is measured along
    side: Side
    gap: int
    away: bool  # the Player was moving away from the object along that axis
    text: str


def box_of(value: Any) -> Box | None:
    """The box of one observed object, or None when `value` is not a well-formed object."""
    if not isinstance(value, dict):
        return None
    try:
        x, y = float(value["x"]), float(value["y"])
        w, h = float(value.get("w", 0)), float(value.get("h", 0))
        return Box(x, x + w, y, y + h, float(value.get("dx", 0)), float(value.get("dy", 0)))
    except (KeyError, TypeError, ValueError):
        return None


def distance(a: Box | None, b: Box | None) -> float:
    """Chebyshev distance between two boxes' edges; 0 when they overlap."""
    if a is None or b is None:
        return float("inf")
    return max(_gap(a.x0, a.x1, b.x0, b.x1), _gap(a.y0, a.y1, b.y0, b.y1))


def fixed_axes(trace: Trace) -> tuple[Axis, ...]:
    """The axes along which the Player never moves in this episode's snapshots: a Pong paddle
    keeps its x, a Breakout paddle its y. Objects must cross that line to get past it."""
    boxes = [b for s in trace.snapshots if (b := box_of(s.obs.get(PLAYER))) is not None]
    if len(boxes) < 2:
        return ()
    axes: list[Axis] = []
    spans: tuple[tuple[Axis, list[float]], ...] = (
        ("x", [b.x0 for b in boxes]),
        ("y", [b.y0 for b in boxes]),
    )
    for axis, values in spans:
        if max(values) - min(values) <= 2:
            axes.append(axis)
    return tuple(axes)


def find_miss(window: list[Snapshot], axes: tuple[Axis, ...]) -> Miss | None:
    """How the object that mattered got past the Player in the steps before a loss: where it
    was when it last entered the Player's line, else its closest approach."""
    frames = [(s, p) for s in window if (p := box_of(s.obs.get(PLAYER))) is not None]
    if not frames:
        return None
    return _line_entry(frames, axes) or _closest_approach(frames)


def _line_entry(frames: list[tuple[Snapshot, Box]], axes: tuple[Axis, ...]) -> Miss | None:
    """The last time a moving object entered the Player's line (along a fixed axis)."""
    entry: Miss | None = None
    for fixed in axes:
        was_crossing = False
        for snapshot, player in frames:
            crossing = [
                (name, box) for name, box in _movers(snapshot.obs) if _on_line(player, box, fixed)
            ]
            if crossing and not was_crossing and (entry is None or snapshot.step >= entry.step):
                name, box = min(crossing, key=lambda item: distance(player, item[1]))
                miss_axis: Axis = "y" if fixed == "x" else "x"
                entry = _describe_miss(name, box, player, snapshot.step, miss_axis, crossed=True)
            was_crossing = bool(crossing)
    return entry


def _closest_approach(frames: list[tuple[Snapshot, Box]]) -> Miss | None:
    best: tuple[float, int, str, Box, Box] | None = None
    for snapshot, player in frames:
        for name, box in _movers(snapshot.obs):
            gap = distance(player, box)
            if best is None or gap < best[0]:
                best = (gap, snapshot.step, name, box, player)
    if best is None:
        return None
    _, step, name, box, player = best
    horizontal = _gap(player.x0, player.x1, box.x0, box.x1)
    vertical = _gap(player.y0, player.y1, box.y0, box.y1)
    axis: Axis = "x" if horizontal >= vertical else "y"
    return _describe_miss(name, box, player, step, axis, crossed=False)


def _movers(obs: dict[str, Any]) -> Iterator[tuple[str, Box]]:
    """Objects other than the Player that moved this step: the ones that can get past it
    (static shields and block rows cannot)."""
    for name, value in obs.items():
        if name == PLAYER:
            continue
        for item in value if isinstance(value, list) else [value]:
            box = box_of(item)
            if box is not None and (box.dx or box.dy):
                yield name, box


def _gap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Distance between intervals [a0, a1] and [b0, b1]; 0 when they overlap."""
    return max(0.0, b0 - a1, a0 - b1)


def _on_line(player: Box, box: Box, axis: Axis) -> bool:
    """Whether `box` overlaps the Player's extent along `axis` (it is level with the Player)."""
    if axis == "x":
        return _gap(player.x0, player.x1, box.x0, box.x1) == 0
    return _gap(player.y0, player.y1, box.y0, box.y1) == 0


def _describe_miss(
    name: str, box: Box, player: Box, step: int, axis: Axis, *, crossed: bool
) -> Miss:
    """Phrase where `box` was relative to the Player along `axis`, and how the Player moved."""
    if axis == "y":
        low, high, player_low, player_high, velocity = (
            box.y0,
            box.y1,
            player.y0,
            player.y1,
            player.dy,
        )
    else:
        low, high, player_low, player_high, velocity = (
            box.x0,
            box.x1,
            player.x0,
            player.x1,
            player.dx,
        )
    gap = _gap(player_low, player_high, low, high)
    before = high <= player_low  # above (y) or left of (x) the Player
    side = _SIDES[axis][0 if before else 1]
    moving = ("up", "down")[velocity > 0] if axis == "y" else ("left", "right")[velocity > 0]
    away = gap > 0 and (velocity > 0 if before else velocity < 0)
    span = f"{name} {axis} {low:g}..{high:g}, {PLAYER} {axis} {player_low:g}..{player_high:g}"
    if gap == 0:
        text = f"at step {step} the {name} touched the {PLAYER}"
        side = "at"
    elif crossed:
        line = "x" if axis == "y" else "y"
        text = (
            f"when the {name} reached the {PLAYER}'s {line} (step {step}) it was "
            f"{gap:g} px {side} the {PLAYER} ({span})"
        )
    else:
        text = f"the {name} came closest at step {step}: {gap:g} px {side} the {PLAYER} ({span})"
    if gap and velocity:
        text += f"; the {PLAYER} was moving {'away' if away else moving} (d{axis}={velocity:+g})"
    return Miss(name, step, axis, side, int(gap), away, text)
