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

The answer may arrive in any shape a server sends as a message's `content`: a string, a list of
parts (`[{"type": "text", "text": ...}]`), a number, null. `answer_text` reads them all, so a
strange reply is a failed proposal, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.checker.parsing import parse

_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+.-]*)[^\n`]*$")
_DEFINES_ACT = re.compile(r"^(?:async[ \t]+)?def[ \t]+act[ \t]*\(", re.MULTILINE)
_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})
_TEXT_PART_TYPES = frozenset({"text", "output_text"})  # parts of the answer, not of reasoning
_MAX_PART_DEPTH = 4


@dataclass(frozen=True)
class _Block:
    code: str
    parses: bool


def answer_text(content: object) -> str:
    """The text of a chat message's `content`, whatever its shape.

    OpenAI-compatible servers send a string, or a list of typed parts (text parts joined in
    order; reasoning, image or tool parts dropped), and broken ones send numbers, objects or
    null; those become their plain text (None: ""), which then holds no program.
    """
    return _text_of(content, 0)


def _text_of(content: object, depth: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if depth >= _MAX_PART_DEPTH:
        return ""
    if isinstance(content, Mapping):
        kind = content.get("type")
        if kind is not None and kind not in _TEXT_PART_TYPES:
            return ""
        text = content.get("text")
        return text if isinstance(text, str) else ""
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        return "".join(_text_of(part, depth + 1) for part in content)
    if isinstance(content, bytes | bytearray):
        return bytes(content).decode("utf-8", errors="replace")
    return str(content)


def extract_program(text: object) -> str | None:
    """The policy module in the answer, or None when it holds nothing usable.

    `text` is normally a string; any other `content` shape goes through `answer_text` first.
    """
    answer = strip_reasoning(text)
    candidates = [block for block in _fenced_blocks(answer) if _DEFINES_ACT.search(block)]
    if candidates:
        return _choose([_Block(code, _parses(code)) for code in candidates])
    bare = answer.strip()
    if bare and _DEFINES_ACT.search(bare) and _parses(bare):
        return bare + "\n"
    return None


def strip_reasoning(text: object) -> str:
    """The answer without the model's reasoning blocks (rule 1 of the module docstring)."""
    text = _THINK_BLOCK.sub("", answer_text(text))
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
        parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _choose(blocks: list[_Block]) -> str:
    parsing = [block for block in blocks if block.parses]
    pool = parsing or blocks
    last = pool[-1]
    longest = max(pool, key=lambda block: len(block.code))
    return longest.code if len(longest.code) > 2 * len(last.code) else last.code
