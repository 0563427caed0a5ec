"""What the policy did over a whole episode: the action histogram and how often it changed.

Counted once (`action_stats`), then said twice: as the summary line every detailed episode gets,
and as hints when the numbers say something plain (did nothing, always the same action, jitter).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

from engine.feedback.text import percent
from sandbox.games import ACTION_ALPHABET, Game
from sandbox.results import Trace

NOOP = "NOOP"
_MIN_STEPS_FOR_HINTS = 20  # below this, shares say nothing about the policy


@dataclass(frozen=True)
class ActionStats:
    total: int
    counts: Counter[str]  # trace character -> steps
    names: dict[str, str]  # trace character -> action name
    switch_share: float  # share of steps where the action differed from the one before
    noop_share: float


def action_stats(trace: Trace, game: Game) -> ActionStats | None:
    """The histogram of the episode's actions, or None when act() never returned one."""
    actions = trace.actions
    if not actions:
        return None
    counts = Counter(actions)
    total = len(actions)
    names = {ACTION_ALPHABET[i]: name for i, name in enumerate(game.actions)}
    switches = sum(a != b for a, b in itertools.pairwise(actions))
    noop_char = ACTION_ALPHABET[game.actions.index(NOOP)] if NOOP in game.actions else ""
    return ActionStats(
        total=total,
        counts=counts,
        names=names,
        switch_share=switches / max(total - 1, 1),
        noop_share=counts.get(noop_char, 0) / total,
    )


def actions_line(stats: ActionStats | None) -> str:
    if stats is None:
        return "Actions: none (act() never returned an action)."
    names, counts, total = stats.names, stats.counts, stats.total
    parts = [
        f"{names.get(char, char)} {percent(count / total)}" for char, count in counts.most_common()
    ]
    unused = [name for char, name in names.items() if char not in counts]
    line = f"Actions over {total} steps: " + ", ".join(parts)
    if unused:
        line += f"; never used: {', '.join(unused)}"
    return line + (
        f". Did nothing (NOOP) on {percent(stats.noop_share)} of steps; the action changed on "
        f"{percent(stats.switch_share)} of steps."
    )


def action_hints(stats: ActionStats | None) -> list[str]:
    if stats is None:
        return []
    hints = []
    if stats.noop_share >= 0.8:
        hints.append(f"The policy did nothing on {percent(stats.noop_share)} of steps.")
    top_char, top_count = stats.counts.most_common(1)[0]
    top_name = stats.names.get(top_char)
    top_share = top_count / stats.total
    if top_name != NOOP and top_share >= 0.9 and stats.total >= _MIN_STEPS_FOR_HINTS:
        hints.append(f"It chose {top_name or top_char} on {percent(top_share)} of steps.")
    if stats.switch_share >= 0.4 and stats.total >= _MIN_STEPS_FOR_HINTS:
        hints.append(
            f"The action changed on {percent(stats.switch_share)} of steps: the control jitters "
            "back and forth."
        )
    return hints
