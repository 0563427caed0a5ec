"""The chat messages that ask an LLM for the next program.

The system message is the same for every call: the role, the policy contract (docs/DESIGN.md
§2) and the static checker's rules in brief, built from `sandbox.policy_rules` so the prompt can
never promise what the checker refuses. A third of the reference paper's Pong programs did not
even parse; saying the rules up front is cheaper than learning them from a rejection.

The user message carries what changes: the game, the program to improve, the feedback on it and
the best earlier programs with their scores, each truncated so one long program cannot crowd
out the rest.
"""

from __future__ import annotations

from engine.proposers.base import ProposalContext, ScoredSource
from sandbox.policy_rules import (
    ALLOWED_DUNDER_METHODS,
    ATTRIBUTE_BUILTINS,
    FORBIDDEN_BUILTINS,
    FORBIDDEN_MODULE_ATTRIBUTES,
    MAX_SOURCE_BYTES,
    allowed_modules_text,
)

MAX_EXAMPLES = 3
MAX_EXAMPLE_CHARS = 4000  # per earlier program shown
MAX_EXAMPLES_CHARS = 9000  # all earlier programs together

Message = dict[str, str]


def build_prompt(context: ProposalContext) -> list[Message]:
    """The system and user messages for one proposal."""
    return [
        {"role": "system", "content": system_message()},
        {"role": "user", "content": user_message(context)},
    ]


def system_message() -> str:
    """The role, the policy contract and the checker's rules; the same for every call."""
    dunders = ", ".join(sorted(ALLOWED_DUNDER_METHODS))
    builtins = ", ".join(sorted(FORBIDDEN_BUILTINS, key=lambda name: name.strip("_")))
    attribute_calls = "/".join(sorted(ATTRIBUTE_BUILTINS))
    module_attributes = ", ".join(
        f"{module}.{name}"
        for module, names in sorted(FORBIDDEN_MODULE_ATTRIBUTES.items())
        for name in sorted(names)
    )
    return f"""\
You write Python programs that play Atari games. Each time you get a game-playing program, \
feedback from running it, and the best earlier programs with their scores; you answer with a \
better program. The goal is the highest mean episode return.

The program contract:
- One Python module that defines `act(obs) -> int` at the top level. The runner imports the \
module and calls act(obs) once per step (one step = 4 emulator frames); act returns the index \
of the action to take. Any other return value (float, None, bool, an index out of range) ends \
the episode.
- obs is a plain dict built from the game's objects: each object category maps to a dict \
{{'x', 'y', 'w', 'h', 'dx', 'dy'}} of ints, or, for categories that can appear several times, \
to a list of such dicts. A single object that is off screen is ABSENT from obs: use \
obs.get('Name') and handle None. Lowercase keys are documented scalars (e.g. 'lives').
- Every episode starts from a freshly imported module. Module-level variables may carry state \
from step to step (update them with `global name`), e.g. to estimate velocities or count steps.
- act must return quickly: each call has a time limit of about a second, and an episode runs \
thousands of steps. An exception ends the episode; its traceback is reported back to you.

Rules checked before the program runs (a program that breaks one is rejected, not played):
- Imports: only {allowed_modules_text()}. No numpy, os, sys, time, re or anything else.
- No names or attributes that start with an underscore (so no dunders), except these methods \
in your own classes: {dunders}. No `if __name__ == "__main__":` block and no test code.
- Not available: {builtins}.
- {attribute_calls} only called directly with a string literal name that does not start with \
"_", never passed around as values (no `map(getattr, ...)`, no `def f(g=getattr)`).
- Not allowed: {module_attributes}.
- str.format templates must not look up attributes or items ('{{0.x}}', '{{p[1]}}'); \
f-strings are fine.
- No match statements, nonlocal, async code, metaclasses or except*. Enums only as class \
statements (`class Action(IntEnum):` with `UP = 2` lines), not Enum('Name', [...]) calls.
- At most {MAX_SOURCE_BYTES // 1024} KiB of source.

Answer with ONE complete Python module in a single ```python fenced block. You may write a few \
sentences before it about what you changed and why; write no other code blocks."""


def user_message(context: ProposalContext) -> str:
    """The game, the program to improve with its feedback, and earlier good programs."""
    parent = context.parent
    parts = [
        "## Game",
        context.game.describe(),
        "",
        f"## Current program ({parent.label}, {_score(parent)})",
        _fenced(parent.source),
        "",
        "## Feedback on the current program",
        context.feedback.strip() or "(no feedback)",
    ]
    examples = _examples(context.best, parent)
    if examples:
        parts += ["", "## Best programs so far (for ideas; improve the current program)"]
        parts += examples
    parts += [
        "",
        "## Task",
        f"Write an improved version of the current program for {context.game.name} that earns "
        "a higher return. Use the feedback: fix any error first, then address what made it "
        "lose points or lives. Answer with the complete module in one ```python block.",
    ]
    return "\n".join(parts)


def _examples(best: tuple[ScoredSource, ...], parent: ScoredSource) -> list[str]:
    """The best earlier programs other than the parent, within the size budgets."""
    lines: list[str] = []
    budget = MAX_EXAMPLES_CHARS
    shown = 0
    for example in best:
        if shown >= MAX_EXAMPLES or budget <= 200:
            break
        if example.source.strip() == parent.source.strip():
            continue
        source = truncate_source(example.source, min(MAX_EXAMPLE_CHARS, budget))
        budget -= len(source)
        shown += 1
        lines += [f"### {example.label} ({_score(example)})", _fenced(source)]
    return lines


def truncate_source(source: str, max_chars: int) -> str:
    """The source cut at a line boundary, with a comment saying how many lines were left out."""
    if len(source) <= max_chars:
        return source
    lines = source.splitlines()
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > max_chars - 60:
            break
        kept.append(line)
        size += len(line) + 1
    kept.append(f"# ... ({len(lines) - len(kept)} more lines not shown)")
    return "\n".join(kept) + "\n"


def _score(program: ScoredSource) -> str:
    if program.mean_return is None:
        return "not scored"
    return f"mean return {program.mean_return:.4g}"


def _fenced(source: str) -> str:
    return f"```python\n{source.rstrip()}\n```"
