"""The feedback package's parts on their own: action statistics, miss geometry, formatting.

tests/engine/test_feedback.py checks the whole text; these pin the pieces it is made of, so a
change in one part fails here first, with a smaller diff.
"""

from __future__ import annotations

from engine.feedback.actions import action_hints, action_stats, actions_line
from engine.feedback.geometry import box_of, distance, find_miss, fixed_axes
from engine.feedback.text import clip, fit, num, signed, steps_list
from sandbox.games import get_game
from sandbox.results import Snapshot, Trace

PONG = get_game("Pong")


def box(x: int, y: int, w: int, h: int, dx: int = 0, dy: int = 0) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h, "dx": dx, "dy": dy}


def test_action_stats_counts_shares_and_switches() -> None:
    stats = action_stats(Trace(actions="0000230000"), PONG)
    assert stats is not None
    assert (stats.total, stats.counts["0"], stats.counts["2"]) == (10, 8, 1)
    assert stats.noop_share == 0.8
    assert stats.switch_share == 3 / 9  # 0->2, 2->3, 3->0


def test_actions_line_names_actions_and_unused_ones() -> None:
    line = actions_line(action_stats(Trace(actions="0000230000"), PONG))
    assert line == (
        "Actions over 10 steps: NOOP 80%, RIGHT 10%, LEFT 10%; never used: FIRE, RIGHTFIRE, "
        "LEFTFIRE. Did nothing (NOOP) on 80% of steps; the action changed on 33% of steps."
    )


def test_action_hints_are_returned_not_appended() -> None:
    stats = action_stats(Trace(actions="23" * 15), PONG)
    line = actions_line(stats)
    hints = action_hints(stats)
    assert hints == [
        "The action changed on 100% of steps: the control jitters back and forth.",
    ]
    assert actions_line(stats) == line  # computing the hints changed nothing


def test_action_hints_same_action_and_idle_policy() -> None:
    assert action_hints(action_stats(Trace(actions="3" * 20), PONG)) == [
        "It chose LEFT on 100% of steps."
    ]
    assert action_hints(action_stats(Trace(actions="0" * 20), PONG)) == [
        "The policy did nothing on 100% of steps."
    ]
    assert action_hints(action_stats(Trace(actions="3" * 19), PONG)) == []  # too few steps


def test_actions_without_any_action() -> None:
    stats = action_stats(Trace(actions=""), PONG)
    assert stats is None
    assert actions_line(stats) == "Actions: none (act() never returned an action)."
    assert action_hints(stats) == []


def test_box_of_rejects_malformed_objects() -> None:
    assert box_of({"x": 1}) is None
    assert box_of("Ball") is None
    assert box_of({"x": "a", "y": 2}) is None
    made = box_of(box(10, 20, 4, 2, dx=1))
    assert made is not None and (made.x0, made.x1, made.y0, made.y1, made.dx) == (
        10,
        14,
        20,
        22,
        1,
    )


def test_distance_is_zero_when_boxes_overlap() -> None:
    a, b, c = box_of(box(0, 0, 10, 10)), box_of(box(5, 5, 10, 10)), box_of(box(30, 4, 2, 2))
    assert distance(a, b) == 0
    assert distance(a, c) == 20
    assert distance(a, None) == float("inf")


def test_fixed_axes_of_a_paddle() -> None:
    snapshots = [
        Snapshot(step=i, obs={"Player": box(140, 100 + i, 4, 15)}, action=0, reward=0)
        for i in range(5)
    ]
    assert fixed_axes(Trace(snapshots=snapshots)) == ("x",)
    assert fixed_axes(Trace(snapshots=snapshots[:1])) == ()


def test_find_miss_ball_crossing_a_paddle_line() -> None:
    window = [
        Snapshot(
            step=step,
            obs={"Player": box(140, 100, 4, 15), "Ball": box(132 + 4 * step, 80, 2, 4, dx=4)},
            action=0,
            reward=0,
        )
        for step in range(4)
    ]
    miss = find_miss(window, ("x",))
    assert miss is not None
    # step 2: ball x 140..142 meets the paddle's x 140..144; ball y 80..84, paddle 100..115
    assert (miss.target, miss.step, miss.axis, miss.side, miss.gap) == ("Ball", 2, "y", "above", 16)
    assert not miss.away


def test_find_miss_without_a_player() -> None:
    window = [Snapshot(step=0, obs={"Ball": box(1, 1, 2, 2, dx=1)}, action=0, reward=0)]
    assert find_miss(window, ("x",)) is None


def test_text_helpers() -> None:
    assert (num(3.0), num(2.5), signed(1), signed(-1), signed(0)) == ("3", "2.5", "+1", "-1", "0")
    assert steps_list(list(range(10))) == "0, 1, 2, 3, 4, 5, 6, 7, ... (+2 more)"
    assert clip("abcdef", 5) == "ab..."
    assert fit("x" * 100, 50).endswith("...[feedback trimmed]") and len(fit("x" * 100, 50)) == 50
    assert fit("short", 50) == "short"
