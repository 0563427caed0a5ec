"""One deliberately weak starter policy per game (like the reference paper's), as plain files.

They are data, not code evocade runs itself: each is read as text and played in the sandbox
like any other candidate.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.games import get_game

_HERE = Path(__file__).parent


def seed_source(game: str) -> str:
    """The starter policy's source for `game` (any case)."""
    return (_HERE / f"{get_game(game).name.lower()}.py").read_text()
