"""Make untrusted text safe to show on a terminal.

Policies, LLM replies and anything read back from the database are written by someone else: a
policy that raises `Exception("\\x1b[2J\\x1b]52;c;...\\x07status ok, mean return 21")` must
not clear the operator's screen, write to the clipboard (OSC 52), retitle the window or forge a
score line. Every command passes such text through `safe_line` (one field on one line) or
`safe_block` (a source, a traceback, a diff: newlines and tabs kept) before printing it, and
text given to rich through `safe_markup`, so that `[bold]` in an LLM note stays literal.

What is replaced by a visible escape (`\\x1b`, `\\u202e`, `\\ud800`, ...): C0 controls and DEL
(so every ESC-introduced ANSI, OSC, DCS or APC sequence loses its ESC and shows as text), C1
controls (U+0080-U+009F, which some terminals obey as 8-bit CSI/OSC), Unicode format
characters (bidi overrides and isolates, zero-width characters, the BOM), line and paragraph
separators, and lone surrogates (which cannot even be encoded to a UTF-8 terminal). A
backslash is left as it is: text that merely looks like an escape is harmless.
"""

from __future__ import annotations

import re
import unicodedata

from rich.markup import escape as _rich_escape

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_BLOCK_KEEPS = frozenset("\n\t")


def _is_unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape(text: str, keep: frozenset[str]) -> str:
    if text.isascii() and text.isprintable():  # the common case: nothing to do
        return text
    return "".join(
        _visible(char) if char not in keep and _is_unsafe(char) else char for char in text
    )


def safe_line(text: object) -> str:
    """`text` as one terminal-safe line: every control character, newlines and tabs included,
    shown as a visible escape (an untrusted field cannot start a line of its own)."""
    return _escape(str(text), frozenset())


_CRLF = re.compile(r"\r\n")


def safe_block(text: object) -> str:
    """`text` as terminal-safe lines: newlines and tabs are kept (a Windows line end counts
    as a newline), every other control character is shown as a visible escape; a lone
    carriage return, which would let a line overwrite what was printed before it, too."""
    return _escape(_CRLF.sub("\n", str(text)), _BLOCK_KEEPS)


def safe_markup(text: object, *, block: bool = False) -> str:
    """`text` made terminal-safe and escaped for rich markup: `[bold]` prints as itself."""
    return _rich_escape(safe_block(text) if block else safe_line(text))


def indented(text: object, prefix: str) -> str:
    """A terminal-safe block with every line after `prefix` (for tracebacks, outputs)."""
    return "\n".join(prefix + line for line in safe_block(text).rstrip("\n").split("\n"))
