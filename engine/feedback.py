"""Turn one evaluation into the few thousand characters of feedback the next prompt carries.

The reference paper pasted the full step-by-step rollout into every prompt (~250k characters for
Pong, DESIGN.md §6). What a model can act on is much smaller: how each episode ended, what went
wrong (the traceback, the checker's diagnostics), and what happened in the few steps before each
point or life was lost. This module says exactly that, event first, under a hard size cap:

- per seed: return, length, status; the error or the checker's findings;
- for the worst episodes: rewards and lives lost with their steps, an action histogram, the few
  steps before the first losses (one line per step: action and key object positions), and plain
  hints computed from the data, e.g. where the object nearest the Player was when it got past.

The hints stay generic over games: they only assume an object called "Player" (when there is
one) and boxes `{x, y, w, h, dx, dy}`. When the Player keeps one coordinate fixed (a paddle),
objects that cross that line are what it must meet, and the distance along the other axis is
the miss; otherwise the closest approach is reported.

`render_step_by_step` is the paper-style dump, kept only as the baseline that
`benchmarks/bench_prompt.py` measures against.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.games import ACTION_ALPHABET, Game
from sandbox.results import (
    EpisodeResult,
    EvaluationResult,
    Snapshot,
    Status,
    Trace,
)

MAX_FEEDBACK_CHARS = 6000
MAX_EPISODE_LINES = 12  # per-seed summary lines before the rest are folded into one line
MAX_DIAGNOSTICS = 25
MAX_LINE_CHARS = 240
MAX_STEPS_LISTED = 8  # event steps listed per kind before "... (+N more)"
WINDOW_STEPS = 8  # steps before an event searched for what happened (the trace keeps 8 by default)
PLAYER = "Player"
NOOP = "NOOP"


@dataclass(frozen=True)
class _Detail:
    """How much to say; compose_feedback walks down the ladder until the text fits the cap."""

    episodes: int  # episodes described in detail (the worst first)
    events: int  # lost points/lives shown step by step, per episode
    steps: int  # steps shown before each of those
    error_lines: int  # traceback lines kept


_LADDER = (
    _Detail(episodes=2, events=2, steps=5, error_lines=15),
    _Detail(episodes=2, events=1, steps=4, error_lines=10),
    _Detail(episodes=1, events=1, steps=3, error_lines=8),
    _Detail(episodes=1, events=0, steps=0, error_lines=6),
    _Detail(episodes=0, events=0, steps=0, error_lines=4),
)


def compose_feedback(
    result: EvaluationResult, game: Game, *, max_chars: int = MAX_FEEDBACK_CHARS
) -> str:
    """Event-focused feedback on one evaluation, at most `max_chars` characters."""
    if result.status == Status.REJECTED:
        return _fit(_rejected(result), max_chars)
    text = ""
    for detail in _LADDER:
        text = "\n".join(_compose(result, game, detail))
        if len(text) <= max_chars:
            return text
    return _fit(text, max_chars)


def render_step_by_step(steps: list[tuple[dict[str, Any], int, float]]) -> str:
    """The reference paper's feedback: one line per step with the full observation.

    Only the prompt-size benchmark uses it, as the baseline compose_feedback is measured against.
    """
    return "\n".join(
        f"step {index}: state={obs!r}, action={action}, reward={reward:g}"
        for index, (obs, action, reward) in enumerate(steps)
    )


# -- sections ----------------------------------------------------------------------------------


def _rejected(result: EvaluationResult) -> str:
    lines = ["The static checker rejected the program, so nothing ran: no episode was played."]
    diagnostics = result.check.diagnostics if result.check else []
    if diagnostics:
        lines.append("Fix every problem below (line and column in the program):")
        lines += [f"- {d.render()}" for d in diagnostics[:MAX_DIAGNOSTICS]]
        if len(diagnostics) > MAX_DIAGNOSTICS:
            lines.append(f"- ... and {len(diagnostics) - MAX_DIAGNOSTICS} more problems")
    else:
        lines.append("The checker gave no details.")
    return "\n".join(lines)


def _compose(result: EvaluationResult, game: Game, detail: _Detail) -> list[str]:
    lines = [_header(result, game)]
    if result.episodes:
        lines += _episode_table(result)
    ranked = sorted(result.episodes, key=lambda e: (-e.status.severity, e.episode_return, e.seed))
    errors: dict[str, int] = {}  # error text (without its step) -> seed already detailed
    for rank, episode in enumerate(ranked[: detail.episodes]):
        label = "worst episode" if rank == 0 and len(ranked) > 1 else "episode"
        lines.append("")
        same = errors.get(_STEP_SUFFIX.sub("", episode.error or ""))
        if same is not None:
            lines.append(f"Seed {episode.seed} ended with the same error as seed {same}.")
            continue
        if episode.error:
            errors[_STEP_SUFFIX.sub("", episode.error)] = episode.seed
        lines += _episode_detail(episode, game, detail, result.env.max_steps, label)
    return lines


_STEP_SUFFIX = re.compile(r"\(?\bat step \d+\)?")


def _header(result: EvaluationResult, game: Game) -> str:
    returns = result.returns
    env = result.env
    settings = (
        f"frameskip {env.frameskip}, sticky actions {env.repeat_action_probability:g}, "
        f"step cap {env.max_steps}"
    )
    if not returns:
        return f"Evaluation on {game.name} ({settings}): no episode was played."
    spread = f" (min {_num(min(returns))}, max {_num(max(returns))})" if len(returns) > 1 else ""
    return (
        f"Evaluation on {game.name} ({settings}): {len(returns)} episode"
        f"{'s' if len(returns) != 1 else ''}, status {result.status.value}, "
        f"mean return {_num(sum(returns) / len(returns))}{spread}."
    )


def _episode_table(result: EvaluationResult) -> list[str]:
    lines = ["Per episode:"]
    shown = result.episodes[:MAX_EPISODE_LINES]
    for episode in shown:
        lines.append(f"- {_episode_line(episode, result.env.max_steps)}")
    rest = result.episodes[MAX_EPISODE_LINES:]
    if rest:
        statuses = Counter(e.status.value for e in rest)
        lines.append(
            f"- {len(rest)} more: returns "
            + ", ".join(_num(e.episode_return) for e in rest[:30])
            + (", ..." if len(rest) > 30 else "")
            + "; statuses "
            + ", ".join(f"{name} x{count}" for name, count in statuses.items())
        )
    return lines


def _episode_line(episode: EpisodeResult, max_steps: int) -> str:
    status = episode.status.value
    if episode.status != Status.OK:
        status += f" at step {episode.length}"
    elif episode.length >= max_steps:
        status += " (stopped at the step cap)"
    return (
        f"seed {episode.seed}: {status}, return {_num(episode.episode_return)}, "
        f"{episode.length} steps"
    )


def _episode_detail(
    episode: EpisodeResult, game: Game, detail: _Detail, max_steps: int, label: str
) -> list[str]:
    lines = [f"{label.capitalize()}, {_episode_line(episode, max_steps)}."]
    hints: list[str] = []
    if episode.error:
        lines.append(f"What ended it ({episode.status.value}):")
        lines += [f"  {line}" for line in _trim_error(episode.error, detail.error_lines)]
        hints += _error_hints(episode, game)
    trace = episode.trace
    if trace is None:
        lines.append("No trace was recorded for this episode.")
        return lines
    lines += _events_summary(trace)
    lines += _actions_summary(trace, game, hints)
    losses = _loss_events(trace)
    shown = losses[: detail.events] if detail.steps else []
    fixed_axes = _fixed_axes(trace)
    misses = {step: _miss(_window(trace, step), fixed_axes) for step, _ in losses}
    marks = dict(losses)
    blocks: list[_Block] = [
        _Block(f"Before {what} at step {step}:", _window(trace, step), misses[step])
        for step, what in shown
    ]
    if episode.status != Status.OK and detail.steps and trace.snapshots:
        final = trace.snapshots[-1]
        window = [s for s in trace.snapshots if final.step - WINDOW_STEPS <= s.step < final.step]
        blocks.append(
            _Block(f"Last steps before the {episode.status.value}:", window, None, (final,))
        )
    legend, inline = _sizes([s for block in blocks for s in [*block.window, *block.final]])
    if blocks and legend:
        lines.append(f"Object sizes: {legend}.")
    for block in blocks:
        lines += _render_block(block, game, detail.steps, marks, inline)
    shown_steps = {step for step, _ in shown}
    hints += _miss_hints(misses, shown_steps)
    hints += _episode_hints(episode, trace, max_steps)
    if episode.output:
        hints.append(f"It printed: {_clip(episode.output.strip(), 300)!r}")
    if hints:
        lines.append("Hints:")
        lines += [f"- {hint}" for hint in hints]
    return lines


@dataclass(frozen=True)
class _Block:
    """Steps shown before one loss (or before the failure), and what they show."""

    head: str
    window: list[Snapshot]
    miss: _Miss | None
    final: tuple[Snapshot, ...] = ()


def _trim_error(error: str, max_lines: int) -> list[str]:
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if len(lines) > max_lines:
        lines = [lines[0], "...", *lines[-(max_lines - 2) :]]
    return [_clip(line, MAX_LINE_CHARS) for line in lines]


def _events_summary(trace: Trace) -> list[str]:
    lines = []
    if trace.rewards:
        by_value: dict[float, list[int]] = {}
        for step, reward in trace.rewards:
            by_value.setdefault(reward, []).append(step)
        total = sum(reward for _, reward in trace.rewards)
        parts = [
            f"{_signed(value)} x{len(steps)} at step{'s' if len(steps) > 1 else ''} "
            f"{_steps_list(steps)}"
            for value, steps in sorted(by_value.items(), key=lambda item: -item[0])
        ]
        lines.append(f"Rewards (total {_signed(total)}): " + "; ".join(parts) + ".")
    else:
        lines.append("Rewards: none.")
    if trace.life_losses:
        count = len(trace.life_losses)
        lines.append(
            f"Lives lost: {count}, at step{'s' if count > 1 else ''} "
            f"{_steps_list(trace.life_losses)}."
        )
    return lines


def _actions_summary(trace: Trace, game: Game, hints: list[str]) -> list[str]:
    actions = trace.actions
    if not actions:
        return ["Actions: none (act() never returned an action)."]
    counts = Counter(actions)
    total = len(actions)
    names = {ACTION_ALPHABET[i]: name for i, name in enumerate(game.actions)}
    parts = [
        f"{names.get(char, char)} {_percent(count / total)}" for char, count in counts.most_common()
    ]
    unused = [name for char, name in names.items() if char not in counts]
    switches = sum(a != b for a, b in itertools.pairwise(actions))
    switch_share = switches / max(total - 1, 1)
    noop_char = ACTION_ALPHABET[game.actions.index(NOOP)] if NOOP in game.actions else ""
    noop_share = counts.get(noop_char, 0) / total
    line = f"Actions over {total} steps: " + ", ".join(parts)
    if unused:
        line += f"; never used: {', '.join(unused)}"
    line += (
        f". Did nothing (NOOP) on {_percent(noop_share)} of steps; the action changed on "
        f"{_percent(switch_share)} of steps."
    )
    if noop_share >= 0.8:
        hints.append(f"The policy did nothing on {_percent(noop_share)} of steps.")
    top_char, top_count = counts.most_common(1)[0]
    if names.get(top_char) != NOOP and top_count / total >= 0.9 and total >= 20:
        hints.append(
            f"It chose {names.get(top_char, top_char)} on {_percent(top_count / total)} of steps."
        )
    if switch_share >= 0.4 and total >= 20:
        hints.append(
            f"The action changed on {_percent(switch_share)} of steps: the control jitters "
            "back and forth."
        )
    return [line]


def _loss_events(trace: Trace) -> list[tuple[int, str]]:
    """Negative rewards and lives lost, by step (one entry per step)."""
    events: dict[int, list[str]] = {}
    for step, reward in trace.rewards:
        if reward < 0:
            events.setdefault(step, []).append(f"the reward {_signed(reward)}")
    for step in trace.life_losses:
        events.setdefault(step, []).append("a life lost")
    return [(step, " and ".join(events[step])) for step in sorted(events)]


def _window(trace: Trace, event_step: int) -> list[Snapshot]:
    return [s for s in trace.snapshots if event_step - WINDOW_STEPS < s.step <= event_step]


def _shown_steps(window: list[Snapshot], count: int, miss: _Miss | None) -> list[Snapshot]:
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


# -- rendering steps ---------------------------------------------------------------------------


def _render_block(
    block: _Block,
    game: Game,
    count: int,
    marks: dict[int, str],
    inline: dict[str, tuple[str, ...]],
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
        lines.append(_clip("  unchanged: " + " | ".join(common.values()), MAX_LINE_CHARS))
    if (
        len(rows) > 1
        and not block.final
        and all(parts.keys() <= common.keys() for _, parts in rows)
    ):
        # Nothing on screen moved (a death animation, a pause): one line for all of them.
        actions = " ".join(_action_name(s.action, game) for s, _ in rows)
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
        if snapshot in block.final:
            text = f"{snapshot.step:>5} obs given to act(): {objects}"
            absent = [name for name in game.single_categories if name not in snapshot.obs]
            if absent:
                text += f"  (absent: {', '.join(absent)})"
        else:
            text = f"{snapshot.step:>5} {_action_name(snapshot.action, game):<9} {objects}"
            if snapshot.reward:
                text += f"  reward {_signed(snapshot.reward)}"
            if "life" in marks.get(snapshot.step, ""):
                text += "  <- life lost"
        lines.append(_clip("  " + text, MAX_LINE_CHARS))
    if block.miss is not None:
        lines.append(f"  -> {block.miss.text}.")
    return lines


def _obs_parts(obs: dict[str, Any], inline: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Each key of obs rendered compactly: lists by count and the two nearest to the Player."""
    player = _box(obs.get(PLAYER))
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
                boxes.sort(key=lambda b: _distance(player, _box(b)))
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


def _sizes(snapshots: list[Snapshot]) -> tuple[str, dict[str, tuple[str, ...]]]:
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


def _action_name(action: int | None, game: Game) -> str:
    if action is None:
        return "-"
    return game.actions[action] if 0 <= action < len(game.actions) else str(action)


# -- hints -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Box:
    x0: float
    x1: float
    y0: float
    y1: float
    dx: float
    dy: float


@dataclass(frozen=True)
class _Miss:
    """Where the object that got past the Player was, relative to it."""

    target: str
    step: int
    axis: str  # the axis the gap is measured along ("x" or "y"); "" for a closest approach
    side: str  # "above", "below", "left of", "right of", "at"
    gap: int
    away: bool  # the Player was moving away from the object along that axis
    text: str


def _box(value: Any) -> _Box | None:
    if not isinstance(value, dict):
        return None
    try:
        x, y = float(value["x"]), float(value["y"])
        w, h = float(value.get("w", 0)), float(value.get("h", 0))
        return _Box(x, x + w, y, y + h, float(value.get("dx", 0)), float(value.get("dy", 0)))
    except (KeyError, TypeError, ValueError):
        return None


def _movers(obs: dict[str, Any]) -> Iterator[tuple[str, _Box]]:
    """Objects other than the Player that moved this step: the ones that can get past it
    (static shields and block rows cannot)."""
    for name, value in obs.items():
        if name == PLAYER:
            continue
        for item in value if isinstance(value, list) else [value]:
            box = _box(item)
            if box is not None and (box.dx or box.dy):
                yield name, box


def _gap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Distance between intervals [a0, a1] and [b0, b1]; 0 when they overlap."""
    return max(0.0, b0 - a1, a0 - b1)


def _distance(a: _Box | None, b: _Box | None) -> float:
    if a is None or b is None:
        return float("inf")
    return max(_gap(a.x0, a.x1, b.x0, b.x1), _gap(a.y0, a.y1, b.y0, b.y1))


def _fixed_axes(trace: Trace) -> tuple[str, ...]:
    """The axes along which the Player never moves in this episode's snapshots: a Pong paddle
    keeps its x, a Breakout paddle its y. Objects must cross that line to get past it."""
    boxes = [b for s in trace.snapshots if (b := _box(s.obs.get(PLAYER))) is not None]
    if len(boxes) < 2:
        return ()
    axes = []
    for axis, values in (("x", [b.x0 for b in boxes]), ("y", [b.y0 for b in boxes])):
        if max(values) - min(values) <= 2:
            axes.append(axis)
    return tuple(axes)


def _miss(window: list[Snapshot], fixed_axes: tuple[str, ...]) -> _Miss | None:
    """How the object that mattered got past the Player in the steps before a loss: where it
    was when it last entered the Player's line, else its closest approach."""
    frames = [(s, p) for s in window if (p := _box(s.obs.get(PLAYER))) is not None]
    if not frames:
        return None
    entry: _Miss | None = None
    for fixed in fixed_axes:
        was_crossing = False
        for snapshot, player in frames:
            crossing = [
                (name, box) for name, box in _movers(snapshot.obs) if _on_line(player, box, fixed)
            ]
            if crossing and not was_crossing and (entry is None or snapshot.step >= entry.step):
                name, box = min(crossing, key=lambda item: _distance(player, item[1]))
                miss_axis = "y" if fixed == "x" else "x"
                entry = _describe_miss(name, box, player, snapshot.step, miss_axis, crossed=True)
            was_crossing = bool(crossing)
    if entry is not None:
        return entry
    best: tuple[float, int, str, _Box, _Box] | None = None
    for snapshot, player in frames:
        for name, box in _movers(snapshot.obs):
            distance = _distance(player, box)
            if best is None or distance < best[0]:
                best = (distance, snapshot.step, name, box, player)
    if best is None:
        return None
    distance, step, name, box, player = best
    horizontal = _gap(player.x0, player.x1, box.x0, box.x1)
    vertical = _gap(player.y0, player.y1, box.y0, box.y1)
    axis = "x" if horizontal >= vertical else "y"
    return _describe_miss(name, box, player, step, axis, crossed=False)


def _on_line(player: _Box, box: _Box, axis: str) -> bool:
    """Whether `box` overlaps the Player's extent along `axis` (it is level with the Player)."""
    if axis == "x":
        return _gap(player.x0, player.x1, box.x0, box.x1) == 0
    return _gap(player.y0, player.y1, box.y0, box.y1) == 0


def _describe_miss(
    name: str, box: _Box, player: _Box, step: int, axis: str, *, crossed: bool
) -> _Miss:
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
    side = ("above", "below")[not before] if axis == "y" else ("left of", "right of")[not before]
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
    return _Miss(name, step, axis, side, int(gap), away, text)


def _miss_hints(by_loss: dict[int, _Miss | None], shown_steps: set[int]) -> list[str]:
    """One line over all losses; a lone loss only when its steps were not shown already."""
    found = {step: miss for step, miss in by_loss.items() if miss is not None}
    misses = list(found.values())
    if not misses:
        return []
    if len(misses) == 1:
        step = next(iter(found))
        return [] if step in shown_steps else [f"Before the loss at step {step}, {misses[0].text}."]
    sides = Counter(m.side for m in misses)
    targets = Counter(m.target for m in misses)
    gaps = [m.gap for m in misses if m.gap > 0]
    text = (
        f"In {len(misses)} losses, what got past the {PLAYER} was "
        + ", ".join(f"the {name} x{count}" for name, count in targets.most_common(3))
        + "; it passed "
        + ", ".join(f"{side} it x{count}" for side, count in sides.most_common())
    )
    if gaps:
        text += f"; median gap {statistics.median(gaps):g} px"
    away = sum(m.away for m in misses)
    if away:
        text += f"; the {PLAYER} was moving away from it in {away} of them"
    return [text + "."]


def _episode_hints(episode: EpisodeResult, trace: Trace, max_steps: int) -> list[str]:
    hints = []
    length = episode.length
    if episode.status == Status.OK and length >= max_steps:
        hints.append(
            f"The episode stopped at the step cap ({max_steps} steps) before the game ended."
        )
    if not trace.rewards and length >= 50:
        hints.append(f"No reward at all in {length} steps.")
    elif trace.rewards:
        quiet = length - trace.rewards[-1][0]
        if quiet >= max(500, length // 3):
            hints.append(f"No reward in the last {quiet} steps.")
    if trace.truncated:
        hints.append("Only part of the trace was kept (snapshot cap), later events lack details.")
    return hints


_KEY_ERROR = re.compile(r"KeyError: '([^']+)'")


def _error_hints(episode: EpisodeResult, game: Game) -> list[str]:
    error = episode.error or ""
    match = _KEY_ERROR.search(error)
    if match and match.group(1) in game.categories:
        name = match.group(1)
        return [
            f"act() read obs['{name}'] at a step where no {name} was on screen: objects off "
            f"screen are absent from obs; use obs.get('{name}') and handle None."
        ]
    if episode.status == Status.TIMEOUT:
        return ["act() must return quickly every step: avoid long loops or searches."]
    return []


# -- small formatting helpers ------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.1f}" if value != int(value) else f"{int(value)}"


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + _num(value)


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def _steps_list(steps: list[int]) -> str:
    text = ", ".join(str(step) for step in steps[:MAX_STEPS_LISTED])
    if len(steps) > MAX_STEPS_LISTED:
        text += f", ... (+{len(steps) - MAX_STEPS_LISTED} more)"
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fit(text: str, max_chars: int) -> str:
    marker = "\n...[feedback trimmed]"
    return text if len(text) <= max_chars else text[: max_chars - len(marker)] + marker
