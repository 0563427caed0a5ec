"""Selection rules on plain values: no storage, no sandbox."""

from __future__ import annotations

import pytest

from engine.selection import (
    Champion,
    IslandState,
    Policy,
    after_failure,
    decide,
    migration,
    next_island,
    regressed,
    reseeded,
    run_best,
)

FOLLOW = Policy("follow", regress_ratio=0.8, patience=3, holdout=False)
GREEDY = Policy("greedy", regress_ratio=0.8, patience=3, holdout=False)


def _island(best: float = 10.0, head: str = "h", regressions: int = 0) -> IslandState:
    return IslandState(head, Champion("b", best), regressions)


@pytest.mark.parametrize(
    ("mean", "best", "expected"),
    [(9.0, 10.0, False), (7.9, 10.0, True), (8.0, 10.0, False), (-0.3, 0.0, True), (10, 10, False)],
)
def test_regression_is_below_the_papers_slack(mean: float, best: float, expected: bool) -> None:
    assert regressed(mean, Champion("b", best), 0.8) is expected


def test_follow_moves_the_head_and_rolls_back_after_patience() -> None:
    island = _island()
    for step in range(2):
        decision = decide(island, f"c{step}", 1.0, FOLLOW)
        assert decision.island.head_id == f"c{step}" and decision.rolled_back_to is None
        island = decision.island
    assert island.regressions == 2
    decision = decide(island, "c2", 1.0, FOLLOW)
    assert decision.rolled_back_to == "b"
    assert decision.island.head_id == "b" and decision.island.regressions == 0


def test_a_clean_non_regressing_candidate_resets_the_count() -> None:
    decision = decide(_island(regressions=2), "c", 9.5, FOLLOW)
    assert decision.island.regressions == 0 and decision.island.head_id == "c"


def test_greedy_never_moves_to_a_worse_candidate_and_never_rolls_back() -> None:
    island = _island()
    for step in range(5):
        decision = decide(island, f"c{step}", 1.0, GREEDY)
        assert decision.island.head_id == "h" and decision.rolled_back_to is None
        island = decision.island
    decision = decide(island, "tie", 10.0, GREEDY)
    assert decision.island.head_id == "tie" and not decision.became_best  # ties move, not best


def test_without_holdout_a_better_training_score_makes_the_best() -> None:
    decision = decide(_island(), "c", 12.0, FOLLOW)
    assert decision.became_best and decision.island.best == Champion("c", 12.0)


def test_holdout_keeps_a_lucky_candidate_from_becoming_best() -> None:
    policy = Policy("follow", 0.8, 3, holdout=True)
    island = IslandState("h", Champion("b", 10.0, holdout_mean=9.0))
    lucky = decide(island, "lucky", 15.0, policy, holdout_mean=2.0)
    assert not lucky.became_best and lucky.island.best is not None
    assert lucky.island.best.program_id == "b"
    assert lucky.island.head_id == "lucky"  # it beat the best on training: no regression
    confirmed = decide(lucky.island, "real", 11.0, policy, holdout_mean=9.5)
    assert confirmed.became_best and confirmed.island.best == Champion("real", 11.0, 9.5)
    unplayed = decide(island, "skipped", 12.0, policy, holdout_mean=None)
    assert not unplayed.became_best  # promising but not (yet) confirmed


def test_rollback_goes_to_the_confirmed_best() -> None:
    policy = Policy("follow", 0.8, 1, holdout=True)
    island = IslandState("h", Champion("b", 10.0, 9.0))
    decision = decide(island, "bad", -5.0, policy)
    assert decision.rolled_back_to == "b"


def test_failed_seed_means_no_best_and_the_first_clean_candidate_wins() -> None:
    island = IslandState("seed", None)
    assert decide(island, "c", -21.0, GREEDY).island.best == Champion("c", -21.0)
    held = decide(island, "c", -21.0, Policy("follow", holdout=True), holdout_mean=-20.0)
    assert held.became_best


def test_failure_keeps_the_head_and_carries_feedback() -> None:
    island = after_failure(_island(regressions=1), "it crashed")
    assert island.head_id == "h" and island.regressions == 1 and island.last_failure
    assert decide(island, "c", 10.5, FOLLOW).island.last_failure == ""


def test_migration_every_m_from_best_to_worst() -> None:
    islands = [_island(5.0), IslandState("h2", Champion("top", 20.0)), _island(-3.0)]
    assert migration(islands, 3, migrate_every=4) is None
    assert migration(islands, 4, migrate_every=4) == (1, 2)
    assert migration(islands[:1], 4, migrate_every=4) is None  # one island: never
    equal = [_island(5.0), _island(5.0)]
    assert migration(equal, 4, migrate_every=4) is None  # no churn between equals
    receiver = reseeded(islands[1])
    assert receiver.head_id == "top" and receiver.best == islands[1].best


def test_run_best_and_island_choice() -> None:
    islands = [_island(5.0), IslandState("h2", Champion("top", 20.0)), IslandState("x", None)]
    best = run_best(islands)
    assert best is not None and best.program_id == "top"
    assert run_best([IslandState("x", None)]) is None
    assert next_island(islands, in_flight=[0, 0, 1], proposed=0) == 2
    assert next_island(islands, in_flight=[], proposed=4) == 1  # round robin among equals


def test_island_state_round_trips_through_json() -> None:
    for island in (IslandState("h", Champion("b", 1.5, -2.0), 2, "why"), IslandState("h", None)):
        assert IslandState.from_json(island.to_json()) == island


def test_candidates_to_keep_covers_the_proposal_latency() -> None:
    from engine.population.scheduler import candidates_to_keep

    # 2 slots, 2.5 slot-seconds per candidate: one leaves the slots every 1.25 s; a 5 s call
    # needs 4 proposals out at once, plus 2 being played, plus a spare.
    assert candidates_to_keep(2, 5.0, 2.5, cap=16) == 7
    assert candidates_to_keep(2, 0.0, 2.5, cap=16) == 3  # instant proposals: slots + 1
    assert candidates_to_keep(2, 600.0, 2.5, cap=16) == 16  # capped
    assert candidates_to_keep(2, 5.0, 0.0, cap=16) == 4  # nothing measured yet: 2 per slot
