"""The steps before an event, one short line each: the action and the key object positions.

What looks the same on every line (a static Enemy, a row of blocks, constant sizes) is said
once above the lines, so that the few lines shown carry only what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.feedback.geometry import PLAYER, Miss, box_of, distance
from engine.feedback.text import MAX_LINE_CHARS, clip, signed
from sandbox.games import Game
from sandbox.results import Snapshot, Trace

WINDOW_STEPS = 8  # steps before an event searched for what happened (the trace keeps 8 by default)

Sizes = dict[str, tuple[str, ...]]  # category -> the size keys that vary, shown on every line


@dataclass(frozen=True)
class Block:
    """Steps shown before one loss (or before the failure), and what they show."""

    head: str
    window: list[Snapshot]
    miss: Miss | None
    final: tuple[Snapshot, ...] = ()


def window_before(trace: Trace, event_step: int) -> list[Snapshot]:
    """The snapshots of the WINDOW_STEPS steps up to and including `event_step`."""
    return [s for s in trace.snapshots if event_step - WINDOW_STEPS < s.step <= event_step]


def render_blocks(blocks: list[Block], game: Game, count: int, marks: dict[int, str]) -> list[str]:
    """Every block, after one legend of the object sizes that stay constant across them."""
    legend, inline = _sizes([s for block in blocks for s in [*block.window, *block.final]])
    lines = []
    if blocks and legend:
        lines.append(f"Object sizes: {legend}.")
    for block in blocks:
        lines += _render_block(block, game, count, marks, inline)
    return lines


def _render_block(
    block: Block, game: Game, count: int, marks: dict[int, str], inline: Sizes
) -> list[str]:
    """One line per step; objects that look the same on every line are said once, above."""
    rows = [(s, _obs_parts(s.obs, inline)) for s in _shown_steps(block.window, count, block.miss)]
    rows += [(s, _obs_parts(s.obs, inline)) for s in block.final]
    common: dict[str, str] = {}
    if len(rows) > 1:
        first = rows[0][1]
        common = {k: v for k, v in first.items() if all(p.get(k) == v for _, p in rows[1:])}
    lines = [block.head]
    if common:
        lines.append(clip("  unchanged: " + " | ".join(common.values()), MAX_LINE_CHARS))
    if (
        len(rows) > 1
        and not block.final
        and all(parts.keys() <= common.keys() for _, parts in rows)
    ):
        # Nothing on screen moved (a death animation, a pause): one line for all of them.
        actions = " ".join(action_name(s.action, game) for s, _ in rows)
        last = rows[-1][0]
        mark = "  <- life lost" if "life" in marks.get(last.step, "") else ""
        lines.append(
            f"  steps {rows[0][0].step}..{last.step}: nothing moved; actions {actions}{mark}"
        )
        return lines
    previous: int | None = None
    for snapshot, parts in rows:
        if previous is not None and snapshot.step > previous + 1:
            lines.append("    ...")
        previous = snapshot.step
        objects = " | ".join(v for k, v in parts.items() if k not in common) or "(as above)"
        text = _step_line(snapshot, objects, block, game, marks)
        lines.append(clip("  " + text, MAX_LINE_CHARS))
    if block.miss is not None:
        lines.append(f"  -> {block.miss.text}.")
    return lines


def _step_line(
    snapshot: Snapshot, objects: str, block: Block, game: Game, marks: dict[int, str]
) -> str:
    if snapshot in block.final:
        text = f"{snapshot.step:>5} obs given to act(): {objects}"
        absent = [name for name in game.single_categories if name not in snapshot.obs]
        if absent:
            text += f"  (absent: {', '.join(absent)})"
        return text
    text = f"{snapshot.step:>5} {action_name(snapshot.action, game):<9} {objects}"
    if snapshot.reward:
        text += f"  reward {signed(snapshot.reward)}"
    if "life" in marks.get(snapshot.step, ""):
        text += "  <- life lost"
    return text


def _shown_steps(window: list[Snapshot], count: int, miss: Miss | None) -> list[Snapshot]:
    """The `count` steps up to the moment the object got past the Player (or the last ones),
    plus the loss itself: in Breakout the ball is gone for several steps before the life is."""
    if not window:
        return []
    end = len(window) - 1
    if miss is not None:
        end = max((i for i, s in enumerate(window) if s.step <= miss.step + 1), default=end)
    picked = window[max(0, end + 1 - count) : end + 1]
    if window[-1] not in picked:
        picked.append(window[-1])
    return picked


def _obs_parts(obs: dict[str, Any], inline: Sizes) -> dict[str, str]:
    """Each key of obs rendered compactly: lists by count and the two nearest to the Player."""
    player = box_of(obs.get(PLAYER))
    parts: dict[str, str] = {}
    for name, value in obs.items():
        sizes = inline.get(name, ())
        if isinstance(value, dict):
            parts[name] = f"{name} {_render_box(value, sizes)}"
        elif isinstance(value, list):
            boxes = [b for b in value if isinstance(b, dict)]
            if not boxes:
                continue
            which = ""
            if player is not None and len(boxes) > 2:
                boxes.sort(key=lambda b: distance(player, box_of(b)))
                which = " nearest"
            shown = "; ".join(_render_box(b, sizes) for b in boxes[:2])
            parts[name] = f"{name}[{len(boxes)}]{which}: {shown}"
        else:
            parts[name] = f"{name}={value}"
    return parts


def _render_box(box: dict[str, Any], sizes: tuple[str, ...]) -> str:
    text = " ".join(f"{key}={box.get(key)}" for key in ("x", "y", *sizes))
    for key in ("dx", "dy"):
        value = box.get(key)
        if value:
            text += f" {key}={value:+d}" if isinstance(value, int) else f" {key}={value}"
    return text


def _sizes(snapshots: list[Snapshot]) -> tuple[str, Sizes]:
    """A legend of the sizes that stay constant, and per category the ones that vary (those
    are shown on every line: a shrinking bar or a clipped paddle is information)."""
    seen: dict[str, dict[str, set[Any]]] = {}
    for snapshot in snapshots:
        for name, value in snapshot.obs.items():
            for box in value if isinstance(value, list) else [value]:
                if isinstance(box, dict):
                    dims = seen.setdefault(name, {"w": set(), "h": set()})
                    dims["w"].add(box.get("w"))
                    dims["h"].add(box.get("h"))
    legend, inline = [], {}
    for name, dims in seen.items():
        varying = tuple(key for key in ("w", "h") if len(dims[key]) > 1)
        if varying:
            inline[name] = varying
        fixed = [f"{key}={next(iter(dims[key]))}" for key in ("w", "h") if key not in varying]
        if fixed:
            legend.append(f"{name} {' '.join(fixed)}")
    return ", ".join(legend), inline


def action_name(action: int | None, game: Game) -> str:
    if action is None:
        return "-"
    return game.actions[action] if 0 <= action < len(game.actions) else str(action)
