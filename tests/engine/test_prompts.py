"""build_prompt: the contract and rules up front, then the game, the parent and its feedback."""

from __future__ import annotations

from engine.extract import extract_program
from engine.prompts import (
    MAX_EXAMPLE_CHARS,
    MAX_EXAMPLES,
    build_prompt,
    system_message,
    truncate_source,
)
from engine.proposers.base import ProposalContext, ScoredSource
from sandbox.games import get_game
from sandbox.policy_rules import (
    ALLOWED_DUNDER_METHODS,
    ALLOWED_MODULES,
    ATTRIBUTE_BUILTINS,
    FORBIDDEN_BUILTINS,
    FORBIDDEN_MODULE_ATTRIBUTES,
)

PARENT = "def act(obs):\n    return 0  # parent-marker\n"
FEEDBACK = "Evaluation on Pong: mean return -21. Hints: feedback-marker."


def program(marker: str, lines: int = 3) -> str:
    body = "".join(f"    x{i} = {i}  # {marker}\n" for i in range(lines))
    return f"def act(obs):\n{body}    return 0\n"


def context(best: tuple[ScoredSource, ...] = (), game: str = "Pong") -> ProposalContext:
    return ProposalContext(
        game=get_game(game),
        parent=ScoredSource(PARENT, -21.0, "p7"),
        feedback=FEEDBACK,
        best=best,
        iteration=3,
    )


def test_build_prompt_is_a_system_then_a_user_message():
    messages = build_prompt(context())
    assert [m["role"] for m in messages] == ["system", "user"]
    assert all(isinstance(m["content"], str) and m["content"] for m in messages)


def test_system_message_states_the_policy_contract():
    text = system_message()
    for phrase in ("act(obs) -> int", "obs.get(", "freshly imported module", "global name"):
        assert phrase in text
    assert "```python" in text and "ONE complete Python module" in text


def test_system_message_rules_come_from_policy_rules():
    text = system_message()
    for module in ALLOWED_MODULES - {"__future__"}:
        assert module in text
    for name in FORBIDDEN_BUILTINS:
        assert name in text
    for name in ALLOWED_DUNDER_METHODS | ATTRIBUTE_BUILTINS:
        assert name in text
    for module, names in FORBIDDEN_MODULE_ATTRIBUTES.items():
        for name in names:
            assert f"{module}.{name}" in text


def test_user_message_has_game_parent_and_feedback():
    game = get_game("Breakout")
    user = build_prompt(context(game="Breakout"))[1]["content"]
    assert game.describe() in user
    assert PARENT.strip() in user and "p7" in user and "-21" in user
    assert "feedback-marker" in user
    assert "```python" in user


def test_user_message_shows_best_programs_with_scores_without_repeating_the_parent():
    best = (
        ScoredSource(program("best-a"), 5.0, "p2"),
        ScoredSource(PARENT, -21.0, "p7"),
        ScoredSource(program("best-b"), None, "p4"),
    )
    user = build_prompt(context(best))[1]["content"]
    assert "p2 (mean return 5)" in user and "best-a" in user
    assert "p4 (not scored)" in user and "best-b" in user
    assert user.count("parent-marker") == 1


def test_user_message_caps_the_number_and_size_of_examples():
    best = tuple(
        ScoredSource(program(f"ex{i}", lines=400), float(10 - i), f"p{i}") for i in range(6)
    )
    user = build_prompt(context(best))[1]["content"]
    shown = [i for i in range(6) if f"# ex{i}" in user]
    assert shown == list(range(len(shown))) and 1 <= len(shown) <= MAX_EXAMPLES
    assert "more lines not shown" in user
    assert len(user) < 2 * MAX_EXAMPLE_CHARS * MAX_EXAMPLES


def test_truncate_source_cuts_at_a_line_and_says_so():
    source = program("t", lines=500)
    cut = truncate_source(source, 1000)
    assert len(cut) <= 1000
    assert cut.endswith("more lines not shown)\n")
    assert all(line in source.splitlines() for line in cut.splitlines()[:-1])
    assert truncate_source(PARENT, 1000) == PARENT


def test_prompt_parent_block_is_extractable():
    # The parent's fenced block uses the same fence the model is asked to answer with.
    user = build_prompt(context())[1]["content"]
    start = user.index("```python")
    assert extract_program(user[start : user.index("```", start + 3) + 3]) == PARENT
