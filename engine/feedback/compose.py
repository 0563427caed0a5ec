"""Assemble the feedback text: the sections in order, at the most detail that fits the cap."""

from __future__ import annotations

from dataclasses import dataclass

from engine.feedback.actions import action_hints, action_stats, actions_line
from engine.feedback.geometry import Miss, find_miss, fixed_axes
from engine.feedback.hints import episode_hints, error_hints, miss_hints
from engine.feedback.render import WINDOW_STEPS, Block, render_blocks, window_before
from engine.feedback.sections import (
    episode_line,
    episode_table,
    error_key,
    events_summary,
    header,
    loss_events,
    rejected,
    trim_error,
)
from engine.feedback.text import clip, fit
from sandbox.games import Game
from sandbox.results import EpisodeResult, EvaluationResult, Status, Trace

MAX_FEEDBACK_CHARS = 6000
_MAX_OUTPUT_CHARS = 300  # of what the policy printed, quoted in a hint


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
        return fit(rejected(result), max_chars)
    text = ""
    for detail in _LADDER:
        text = "\n".join(_compose(result, game, detail))
        if len(text) <= max_chars:
            return text
    return fit(text, max_chars)


def _compose(result: EvaluationResult, game: Game, detail: _Detail) -> list[str]:
    lines = [header(result, game)]
    if result.episodes:
        lines += episode_table(result)
    ranked = sorted(result.episodes, key=lambda e: (-e.status.severity, e.episode_return, e.seed))
    errors: dict[str, int] = {}  # error text (without its step) -> seed already detailed
    for rank, episode in enumerate(ranked[: detail.episodes]):
        label = "worst episode" if rank == 0 and len(ranked) > 1 else "episode"
        lines.append("")
        same = errors.get(error_key(episode.error))
        if same is not None:
            lines.append(f"Seed {episode.seed} ended with the same error as seed {same}.")
            continue
        if episode.error:
            errors[error_key(episode.error)] = episode.seed
        lines += _episode_detail(episode, game, detail, result.env.max_steps, label)
    return lines


def _episode_detail(
    episode: EpisodeResult, game: Game, detail: _Detail, max_steps: int, label: str
) -> list[str]:
    lines = [f"{label.capitalize()}, {episode_line(episode, max_steps)}."]
    hints: list[str] = []
    if episode.error:
        lines.append(f"What ended it ({episode.status.value}):")
        lines += [f"  {line}" for line in trim_error(episode.error, detail.error_lines)]
        hints += error_hints(episode, game)
    trace = episode.trace
    if trace is None:
        lines.append("No trace was recorded for this episode.")
        return lines
    lines += events_summary(trace)
    stats = action_stats(trace, game)
    lines.append(actions_line(stats))
    hints += action_hints(stats)
    losses = loss_events(trace)
    shown = losses[: detail.events] if detail.steps else []
    axes = fixed_axes(trace)
    misses = {step: find_miss(window_before(trace, step), axes) for step, _ in losses}
    blocks = _blocks(episode, trace, shown, misses, detail)
    lines += render_blocks(blocks, game, detail.steps, dict(losses))
    hints += miss_hints(misses, {step for step, _ in shown})
    hints += episode_hints(episode, trace, max_steps)
    if episode.output:
        hints.append(f"It printed: {clip(episode.output.strip(), _MAX_OUTPUT_CHARS)!r}")
    if hints:
        lines.append("Hints:")
        lines += [f"- {hint}" for hint in hints]
    return lines


def _blocks(
    episode: EpisodeResult,
    trace: Trace,
    shown: list[tuple[int, str]],
    misses: dict[int, Miss | None],
    detail: _Detail,
) -> list[Block]:
    """The steps shown before each loss in `shown`, then before the failure that ended it."""
    blocks = [
        Block(f"Before {what} at step {step}:", window_before(trace, step), misses[step])
        for step, what in shown
    ]
    if episode.status != Status.OK and detail.steps and trace.snapshots:
        final = trace.snapshots[-1]
        window = [s for s in trace.snapshots if final.step - WINDOW_STEPS <= s.step < final.step]
        blocks.append(
            Block(f"Last steps before the {episode.status.value}:", window, None, (final,))
        )
    return blocks
