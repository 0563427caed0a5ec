"""Plain hints computed from an episode's data: what the numbers say that a model would
otherwise have to work out from the step lines (where the Ball got past, no reward for a long
time, a KeyError on an object that was off screen)."""

from __future__ import annotations

import re
import statistics
from collections import Counter

from engine.feedback.geometry import PLAYER, Miss
from sandbox.games import Game
from sandbox.results import EpisodeResult, Status, Trace

_KEY_ERROR = re.compile(r"KeyError: '([^']+)'")
_MIN_STEPS_FOR_NO_REWARD = 50
_MIN_QUIET_STEPS = 500


def miss_hints(by_loss: dict[int, Miss | None], shown_steps: set[int]) -> list[str]:
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


def episode_hints(episode: EpisodeResult, trace: Trace, max_steps: int) -> list[str]:
    hints = []
    length = episode.length
    if episode.status == Status.OK and length >= max_steps:
        hints.append(
            f"The episode stopped at the step cap ({max_steps} steps) before the game ended."
        )
    if not trace.rewards and length >= _MIN_STEPS_FOR_NO_REWARD:
        hints.append(f"No reward at all in {length} steps.")
    elif trace.rewards:
        quiet = length - trace.rewards[-1][0]
        if quiet >= max(_MIN_QUIET_STEPS, length // 3):
            hints.append(f"No reward in the last {quiet} steps.")
    if trace.truncated:
        hints.append("Only part of the trace was kept (snapshot cap), later events lack details.")
    return hints


def error_hints(episode: EpisodeResult, game: Game) -> list[str]:
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
