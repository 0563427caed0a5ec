"""The plain summary lines of the feedback: the header, one line per seed, how an episode ended,
the rewards and lives lost, and the checker's findings for a rejected program."""

from __future__ import annotations

import re
from collections import Counter

from engine.feedback.text import MAX_LINE_CHARS, clip, num, signed, steps_list
from sandbox.games import Game
from sandbox.results import EpisodeResult, EvaluationResult, Status, Trace

MAX_EPISODE_LINES = 12  # per-seed summary lines before the rest are folded into one line
MAX_DIAGNOSTICS = 25
_MAX_FOLDED_RETURNS = 30

# "at step N" in an error message: two seeds failing the same way differ only in that.
_STEP_SUFFIX = re.compile(r"\(?\bat step \d+\)?")


def error_key(error: str | None) -> str:
    """The error text without its step, to tell that two episodes failed the same way."""
    return _STEP_SUFFIX.sub("", error or "")


def rejected(result: EvaluationResult) -> str:
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


def header(result: EvaluationResult, game: Game) -> str:
    returns = result.returns
    env = result.env
    settings = (
        f"frameskip {env.frameskip}, sticky actions {env.repeat_action_probability:g}, "
        f"step cap {env.max_steps}"
    )
    if not returns:
        return f"Evaluation on {game.name} ({settings}): no episode was played."
    spread = f" (min {num(min(returns))}, max {num(max(returns))})" if len(returns) > 1 else ""
    return (
        f"Evaluation on {game.name} ({settings}): {len(returns)} episode"
        f"{'s' if len(returns) != 1 else ''}, status {result.status.value}, "
        f"mean return {num(sum(returns) / len(returns))}{spread}."
    )


def episode_table(result: EvaluationResult) -> list[str]:
    lines = ["Per episode:"]
    shown = result.episodes[:MAX_EPISODE_LINES]
    for episode in shown:
        lines.append(f"- {episode_line(episode, result.env.max_steps)}")
    rest = result.episodes[MAX_EPISODE_LINES:]
    if rest:
        statuses = Counter(e.status.value for e in rest)
        lines.append(
            f"- {len(rest)} more: returns "
            + ", ".join(num(e.episode_return) for e in rest[:_MAX_FOLDED_RETURNS])
            + (", ..." if len(rest) > _MAX_FOLDED_RETURNS else "")
            + "; statuses "
            + ", ".join(f"{name} x{count}" for name, count in statuses.items())
        )
    return lines


def episode_line(episode: EpisodeResult, max_steps: int) -> str:
    status = episode.status.value
    if episode.status != Status.OK:
        status += f" at step {episode.length}"
    elif episode.length >= max_steps:
        status += " (stopped at the step cap)"
    return (
        f"seed {episode.seed}: {status}, return {num(episode.episode_return)}, "
        f"{episode.length} steps"
    )


def trim_error(error: str, max_lines: int) -> list[str]:
    """The first line and the last ones of a traceback, each clipped."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if len(lines) > max_lines:
        lines = [lines[0], "...", *lines[-(max_lines - 2) :]]
    return [clip(line, MAX_LINE_CHARS) for line in lines]


def events_summary(trace: Trace) -> list[str]:
    lines = []
    if trace.rewards:
        by_value: dict[float, list[int]] = {}
        for step, reward in trace.rewards:
            by_value.setdefault(reward, []).append(step)
        total = sum(reward for _, reward in trace.rewards)
        parts = [
            f"{signed(value)} x{len(steps)} at step{'s' if len(steps) > 1 else ''} "
            f"{steps_list(steps)}"
            for value, steps in sorted(by_value.items(), key=lambda item: -item[0])
        ]
        lines.append(f"Rewards (total {signed(total)}): " + "; ".join(parts) + ".")
    else:
        lines.append("Rewards: none.")
    if trace.life_losses:
        count = len(trace.life_losses)
        lines.append(
            f"Lives lost: {count}, at step{'s' if count > 1 else ''} "
            f"{steps_list(trace.life_losses)}."
        )
    return lines


def loss_events(trace: Trace) -> list[tuple[int, str]]:
    """Negative rewards and lives lost, by step (one entry per step)."""
    events: dict[int, list[str]] = {}
    for step, reward in trace.rewards:
        if reward < 0:
            events.setdefault(step, []).append(f"the reward {signed(reward)}")
    for step in trace.life_losses:
        events.setdefault(step, []).append("a life lost")
    return [(step, " and ".join(events[step])) for step in sorted(events)]
