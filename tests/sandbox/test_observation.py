"""build_observation: the policy contract's obs dict from OCAtari objects (docs/DESIGN.md §2)."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.runtime.observation import build_observation


@dataclass
class FakeObject:
    """The attributes OCAtari's GameObject exposes; the emulator itself is tested elsewhere."""

    category: str
    x: int = 1
    y: int = 2
    w: int = 3
    h: int = 4
    dx: int = 5
    dy: int = -6


def test_observation_single_list_absent_and_lives() -> None:
    objects = [
        FakeObject("Player"),
        None,
        FakeObject("NoObject"),
        FakeObject("Block", x=9),
        FakeObject("Block", x=10),
    ]
    obs = build_observation(objects, frozenset({"Block", "Bullet"}), lives=3)
    assert obs["Player"] == {"x": 1, "y": 2, "w": 3, "h": 4, "dx": 5, "dy": -6}
    assert [block["x"] for block in obs["Block"]] == [9, 10]
    assert obs["Bullet"] == []  # list categories are present even when empty
    assert "Ball" not in obs and "NoObject" not in obs
    assert obs["lives"] == 3
    assert all(type(value) is int for value in obs["Player"].values())


def test_observation_at_reset_reports_no_motion() -> None:
    obs = build_observation([FakeObject("Ball", dx=140, dy=96)], frozenset(), None, at_reset=True)
    assert obs["Ball"]["dx"] == obs["Ball"]["dy"] == 0
    assert "lives" not in obs
