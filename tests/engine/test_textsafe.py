"""`engine.textsafe`: untrusted text reaches the terminal only as visible escapes."""

from __future__ import annotations

import pytest
from rich.console import Console

from engine.textsafe import indented, safe_block, safe_line, safe_markup

HOSTILE = (
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b]0;pwned\x07"  # window title
    "\x1b]52;c;ZWNobyBoaQ==\x07"  # OSC 52: write the clipboard
    "\x9b31m"  # C1 CSI
    "\x9d8;;http://x\x9c"  # C1 OSC hyperlink
    "\u202eevil\u202c\u2066x\u2069"  # bidi override and isolate
    "\u200b\ufeff"  # zero width space, BOM
    "\u2028\u2029"  # line and paragraph separators
    "\ud800"  # lone surrogate
    "\r status ok, mean return 21.00"
)

FORBIDDEN = [chr(c) for c in range(0x20) if chr(c) not in "\n\t"] + [
    "\x7f",
    *(chr(c) for c in range(0x80, 0xA0)),
    "\u202e",
    "\u202c",
    "\u2066",
    "\u2069",
    "\u200b",
    "\ufeff",
    "\u2028",
    "\u2029",
    "\ud800",
]


def _assert_clean(text: str, *, newlines_allowed: bool) -> None:
    for char in FORBIDDEN:
        assert char not in text, f"{char!r} survived in {text!r}"
    if not newlines_allowed:
        assert "\n" not in text and "\t" not in text
    text.encode("utf-8")  # a lone surrogate would raise here


def test_textsafe_safe_line_escapes_every_control_visibly() -> None:
    shown = safe_line(HOSTILE + "\nsecond\tline")
    _assert_clean(shown, newlines_allowed=False)
    for visible in (
        "\\x1b[2J",
        "\\x1b]52;c;",
        "\\x07",
        "\\x9b31m",
        "\\u202e",
        "\\ufeff",
        "\\u2028",
        "\\ud800",
        "\\r",
        "\\n",
        "\\t",
    ):
        assert visible in shown
    assert "status ok, mean return 21.00" in shown  # the words stay readable


def test_textsafe_safe_block_keeps_lines_and_tabs_only() -> None:
    source = (
        "def act(obs):\r\n\treturn 0  # \x1b[31mred\x1b[0m\nx = 'caf\u00e9 \u00fc \U0001f600'\r"
    )
    shown = safe_block(source)
    _assert_clean(shown, newlines_allowed=True)
    assert shown.split("\n") == [
        "def act(obs):",
        "\treturn 0  # \\x1b[31mred\\x1b[0m",
        "x = 'caf\u00e9 \u00fc \U0001f600'\\r",
    ]


@pytest.mark.parametrize("text", ["plain ascii", "", "caf\u00e9 \u4e2d\u6587 \U0001f600", "a\\x1b"])
def test_textsafe_leaves_harmless_text_alone(text: str) -> None:
    assert safe_line(text) == text
    assert safe_block(text) == text


def test_textsafe_safe_markup_is_literal_in_rich() -> None:
    console = Console(record=True, width=200, color_system=None, force_terminal=False)
    console.print(safe_markup("[bold red]status ok[/] \x1b[2J"))
    out = console.export_text()
    assert "[bold red]status ok[/]" in out
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_textsafe_indented_prefixes_each_line() -> None:
    assert indented("Traceback:\n  boom\x1b[2J\n", "    ") == ("    Traceback:\n      boom\\x1b[2J")


def test_textsafe_accepts_non_strings() -> None:
    assert safe_line(None) == "None"
    assert safe_line(3.5) == "3.5"
