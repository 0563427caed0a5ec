"""The resume fold and the budgets, on plain values."""

from __future__ import annotations

from engine.config import RunConfig
from engine.population.budgets import budget_reason
from engine.population.resume import LoggedEvent, NumberedProgram, fold
from engine.selection import Champion, IslandState


def _state(head: str, failure: str = "") -> dict[str, object]:
    return IslandState(head, Champion("s", 1.0), 0, failure).to_json()


def test_fold_rebuilds_islands_in_flight_and_numbers_to_propose_again() -> None:
    events = [
        LoggedEvent("population", {"islands": [_state("s"), _state("s")]}),
        LoggedEvent("iteration", {"iteration": 0, "island": 0, "island_state": _state("a")}),
        LoggedEvent("iteration", {"iteration": 2, "island": 1, "island_state": _state("s", "x")}),
        LoggedEvent("migration", {"from": 0, "to": 1, "state": _state("a")}),
        LoggedEvent("iteration", {"iteration": 4, "island": 0, "wall_seconds": 12.5}),
    ]
    programs = [
        NumberedProgram("a", 0, 0, "s"),
        NumberedProgram("c", 1, 3, "s"),  # no event: in flight
        NumberedProgram("e", 0, 5, "a"),  # no event: in flight
    ]
    position = fold(events, programs)
    assert position.islands is not None
    assert [island.head_id for island in position.islands] == ["a", "a"]
    assert position.decided == {0, 2, 4}
    assert [p.program_id for p in position.in_flight] == ["c", "e"]
    assert position.to_propose == [1]  # neither an event nor a program: proposed again
    assert position.next_iteration == 6 and position.wall_seconds == 12.5


def test_fold_keeps_each_islands_last_failure_and_applies_a_persons_revert() -> None:
    events = [
        LoggedEvent("population", {"islands": [_state("s")]}),
        LoggedEvent("iteration", {"iteration": 0, "island": 0, "island_state": _state("s", "why")}),
    ]
    position = fold(events, [])
    assert position.islands is not None and position.islands[0].last_failure == "why"
    reverted = fold([*events, LoggedEvent("revert", {"from": "s", "to": "old"})], [])
    assert reverted.islands is not None and reverted.islands[0].head_id == "old"


def test_fold_of_a_run_killed_before_its_seed_was_decided() -> None:
    position = fold([LoggedEvent("run_started", None)], [])
    assert position.islands is None and position.next_iteration == 0


def test_budget_reason_names_the_first_budget_spent() -> None:
    config = RunConfig(game="Pong", max_env_steps=100, max_tokens=10, max_time_seconds=5)
    assert budget_reason(config, 99, 9, 0.0, 4.0) is None
    assert budget_reason(config, 100, 0, 0.0, 0.0) == "budget: 100 env steps >= 100"
    assert budget_reason(config, 0, 10, 0.0, 0.0) == "budget: 10 LLM tokens >= 10"
    reason = budget_reason(config, 0, 0, 0.0, 5.0)
    assert reason is not None and "wall time" in reason
    assert budget_reason(RunConfig(game="Pong"), 10**9, 10**9, 1e9, 1e9) is None
