"""Pull the policy module out of an LLM answer.

Models wrap code in prose, emit several fenced blocks (a draft, the program, a usage example),
think aloud in `<think>` blocks, or answer with bare code. A wrong guess here wastes a whole
iteration, so the rules are explicit:

1. Reasoning (`<think>...</think>`, also `<thinking>`) is dropped first: drafts inside it are
   not the answer. An unclosed `<think>` drops everything after it; a lone `</think>` (some
   servers strip the opening tag) drops everything before it.
2. Fenced blocks (``` or ~~~) tagged python/py/python3 or untagged are candidates when they
   define `act` at the top level. A block that defines `act` but does not parse still counts:
   the checker then reports the syntax error, which teaches the model more than "no code".
3. Among candidates, those that parse beat those that do not; then the last one wins, unless an
   earlier one is more than twice as long (the answer repeated a snippet of `act` after the
   full module).
4. With no usable fence, the whole answer is taken when it parses as a module defining `act`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+.-]*)[^\n`]*$")
_DEFINES_ACT = re.compile(r"^(?:async[ \t]+)?def[ \t]+act[ \t]*\(", re.MULTILINE)
_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})


@dataclass(frozen=True)
class _Block:
    code: str
    parses: bool


def extract_program(text: str) -> str | None:
    """The policy module in `text`, or None when the answer holds nothing usable."""
    answer = strip_reasoning(text)
    candidates = [block for block in _fenced_blocks(answer) if _DEFINES_ACT.search(block)]
    if candidates:
        return _choose([_Block(code, _parses(code)) for code in candidates])
    bare = answer.strip()
    if bare and _DEFINES_ACT.search(bare) and _parses(bare):
        return bare + "\n"
    return None


def strip_reasoning(text: str) -> str:
    """The answer without the model's reasoning blocks (rule 1 of the module docstring)."""
    text = _THINK_BLOCK.sub("", text)
    opened = _THINK_OPEN.search(text)
    if opened:
        text = text[: opened.start()]
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    return text


def _fenced_blocks(text: str) -> list[str]:
    """Contents of python-or-untagged fenced blocks, in order. An unclosed last fence (an answer
    cut off at the token limit) runs to the end of the text."""
    blocks: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        index += 1
        if not opening:
            continue
        fence = opening.group("fence")
        body: list[str] = []
        while index < len(lines):
            line = lines[index].strip()
            index += 1
            if line and set(line) == {fence[0]} and len(line) >= len(fence):
                break
            body.append(lines[index - 1])
        if opening.group("lang").lower() in _PYTHON_TAGS:
            blocks.append("\n".join(body).strip("\n") + "\n")
    return blocks


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _choose(blocks: list[_Block]) -> str:
    parsing = [block for block in blocks if block.parses]
    pool = parsing or blocks
    last = pool[-1]
    longest = max(pool, key=lambda block: len(block.code))
    return longest.code if len(longest.code) > 2 * len(last.code) else last.code
