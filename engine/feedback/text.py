"""Number and line formatting shared by every part of the feedback, so a value reads the same
in the header, the step lines and the hints."""

from __future__ import annotations

MAX_LINE_CHARS = 240
MAX_STEPS_LISTED = 8  # event steps listed per kind before "... (+N more)"

_TRIMMED = "\n...[feedback trimmed]"


def num(value: float) -> str:
    """An int without a decimal point, anything else with one decimal."""
    return f"{value:.1f}" if value != int(value) else f"{int(value)}"


def signed(value: float) -> str:
    return ("+" if value > 0 else "") + num(value)


def percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def steps_list(steps: list[int]) -> str:
    text = ", ".join(str(step) for step in steps[:MAX_STEPS_LISTED])
    if len(steps) > MAX_STEPS_LISTED:
        text += f", ... (+{len(steps) - MAX_STEPS_LISTED} more)"
    return text


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fit(text: str, max_chars: int) -> str:
    """The text cut to `max_chars`, saying that it was cut."""
    return text if len(text) <= max_chars else text[: max_chars - len(_TRIMMED)] + _TRIMMED
