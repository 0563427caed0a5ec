"""extract_program: which part of an LLM answer becomes the candidate program."""

from __future__ import annotations

import pytest

from engine.extract import answer_text, extract_program, strip_reasoning

PROGRAM = "def act(obs):\n    return 2\n"
LONG_PROGRAM = (
    "import math\n\nSTATE = {'steps': 0}\n\n\ndef helper(obs):\n    return math.floor(1.5)\n\n\n"
    "def act(obs):\n    STATE['steps'] += 1\n    if helper(obs):\n        return 3\n    return 2\n"
)


def fence(code: str, tag: str = "python", mark: str = "```") -> str:
    return f"{mark}{tag}\n{code}{mark}\n"


def test_extract_program_fenced_python_block_with_prose_around_it():
    answer = f"I made the paddle track the ball.\n\n{fence(PROGRAM)}\nThis should score more."
    assert extract_program(answer) == PROGRAM


@pytest.mark.parametrize("tag", ["py", "python3", "", "Python"])
def test_extract_program_accepts_py_python3_and_untagged_fences(tag):
    assert extract_program(f"Here:\n{fence(PROGRAM, tag)}") == PROGRAM


def test_extract_program_ignores_blocks_in_other_languages():
    answer = fence(PROGRAM, "text") + fence('{"def act(": 1}\n', "json")
    assert extract_program(answer) is None


def test_extract_program_tilde_fences_and_longer_backtick_fences():
    assert extract_program(fence(PROGRAM, "python", "~~~")) == PROGRAM
    nested = 'def act(obs):\n    text = """```"""\n    return 0\n'
    assert extract_program(fence(nested, "python", "````")) == nested


def test_extract_program_prefers_the_last_complete_module():
    draft = "def act(obs):\n    return 0\n"
    answer = f"Draft:\n{fence(draft)}\nBetter:\n{fence(PROGRAM)}"
    assert extract_program(answer) == PROGRAM


def test_extract_program_full_module_beats_a_later_snippet_of_act():
    snippet = "def act(obs):\n    return 3\n"
    answer = f"{fence(LONG_PROGRAM)}\nThe key change is in act:\n{fence(snippet)}"
    assert extract_program(answer) == LONG_PROGRAM


def test_extract_program_skips_blocks_without_act():
    helper = "def helper(x):\n    return x\n"
    answer = f"{fence(PROGRAM)}\nAnd a helper you could add:\n{fence(helper)}"
    assert extract_program(answer) == PROGRAM


def test_extract_program_keeps_a_broken_module_for_the_checker_to_diagnose():
    broken = "def act(obs):\n    return (2\n"
    assert extract_program(fence(broken)) == broken


def test_extract_program_prefers_a_block_that_parses_over_a_broken_one():
    broken = "def act(obs):\n    return (2\n"
    assert extract_program(fence(PROGRAM) + fence(broken)) == PROGRAM


def test_extract_program_unclosed_fence_runs_to_the_end():
    assert extract_program("Here it is:\n```python\n" + PROGRAM) == PROGRAM


def test_extract_program_bare_module_without_fences():
    assert extract_program("\n" + LONG_PROGRAM + "\n") == LONG_PROGRAM


def test_extract_program_prose_only_is_none():
    assert extract_program("I would move the paddle towards the ball: def act(obs) ...") is None
    assert extract_program("") is None


def test_extract_program_code_only_inside_think_is_not_the_answer():
    answer = f"<think>Maybe:\n{fence(PROGRAM)}</think>\nI am not sure how to improve it."
    assert extract_program(answer) is None


def test_extract_program_code_after_think_block():
    draft = "def act(obs):\n    return 0\n"
    answer = f"<think>First try:\n{fence(draft)}\nno, better:</think>\n{fence(PROGRAM)}"
    assert extract_program(answer) == PROGRAM


def test_extract_program_bare_module_after_think_block():
    assert extract_program(f"<think>the ball moves up</think>\n{PROGRAM}") == PROGRAM


def test_strip_reasoning_unclosed_and_lone_closing_tags():
    assert strip_reasoning("<think>still thinking ```python\ndef act(obs):") == ""
    assert strip_reasoning("reasoning without opening tag</think>answer") == "answer"
    assert strip_reasoning("<THINKING>x</THINKING>kept") == "kept"


def test_extract_program_windows_line_endings():
    answer = "Here:\r\n```python\r\ndef act(obs):\r\n    return 2\r\n```\r\n"
    assert extract_program(answer) == PROGRAM


# -- reply shapes real servers send as `message.content` (issue #12, item 1) ----------------


def test_extract_program_from_a_list_of_text_parts():
    parts = [
        {"type": "text", "text": "Here is the program:\n```python\n"},
        {"type": "text", "text": PROGRAM + "```\n"},
    ]
    assert extract_program(parts) == PROGRAM


def test_extract_program_list_parts_drop_reasoning_and_non_text_parts():
    draft = "def act(obs):\n    return 0\n"
    parts = [
        {"type": "reasoning", "text": fence(draft)},
        {"type": "image_url", "image_url": {"url": "data:..."}},
        {"type": "output_text", "text": fence(PROGRAM)},
    ]
    assert extract_program(parts) == PROGRAM


@pytest.mark.parametrize(
    "content",
    [None, 5, 3.5, True, {"unexpected": "object"}, [1, None, {"type": "text", "text": 7}], b"\xff"],
)
def test_extract_program_odd_content_shapes_give_no_program_and_no_error(content):
    assert extract_program(content) is None
    assert isinstance(strip_reasoning(content), str)


def test_answer_text_reads_every_shape_as_text():
    assert answer_text("plain") == "plain"
    assert answer_text(None) == ""
    assert answer_text(42) == "42"
    assert answer_text([{"type": "text", "text": "a"}, "b", {"text": "c"}]) == "abc"
    assert answer_text({"type": "text", "text": "one part"}) == "one part"
    deep: list[object] = ["x"]
    for _ in range(50):
        deep = [deep]
    assert (
        answer_text(deep) == ""
    )  # nesting this deep is not an answer; bounded, no recursion error
