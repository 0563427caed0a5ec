"""Where a run stands, rebuilt from what storage committed: the fold behind `--resume`.

A pure function of the run's audit log and programs, so every kill point can be tested
without a sandbox (tests/engine/population/test_resume.py). The log is the source of truth:

- `population` (written once the seed program is evaluated): every island's first state;
- `iteration` (one per decided proposal): its number, and the island's state after it;
- `migration`: the receiving island's new state;
- `revert` (a person's `evocade revert`): every island continues from that program.

A program with an iteration number but no `iteration` event was in flight: it is resumed from
its stored evaluations (nothing committed is played again). An iteration number below the
highest one seen that has neither an event nor a program was being proposed: it is proposed
again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.selection import IslandState


@dataclass(frozen=True)
class LoggedEvent:
    kind: str
    data: Mapping[str, Any] | None


@dataclass(frozen=True)
class NumberedProgram:
    """A program a proposal made: (id, island, iteration number, parent)."""

    program_id: str
    island: int
    iteration: int
    parent_id: str | None


@dataclass
class RunPosition:
    islands: list[IslandState] | None = None  # None: the seed was never decided
    decided: set[int] = field(default_factory=set)
    wall_seconds: float = 0.0  # of earlier invocations
    in_flight: list[NumberedProgram] = field(default_factory=list)
    to_propose: list[int] = field(default_factory=list)  # numbers to propose again, in order
    next_iteration: int = 0


def _with_state(islands: list[IslandState] | None, island: Any, state: Any) -> None:
    known = islands is not None and isinstance(island, int) and 0 <= island < len(islands)
    if known and isinstance(state, dict):
        assert islands is not None
        islands[island] = IslandState.from_json(state)


def fold(events: Iterable[LoggedEvent], programs: Sequence[NumberedProgram]) -> RunPosition:
    """The run's position after `events` (oldest first) given the numbered programs."""
    position = RunPosition()
    islands: list[IslandState] | None = None
    for event in events:
        data = event.data or {}
        if event.kind == "population" and isinstance(data.get("islands"), list):
            islands = [IslandState.from_json(state) for state in data["islands"]]
        elif event.kind == "iteration" and isinstance(data.get("iteration"), int):
            position.decided.add(data["iteration"])
            _with_state(islands, data.get("island"), data.get("island_state"))
            if isinstance(data.get("wall_seconds"), int | float):
                position.wall_seconds = float(data["wall_seconds"])
        elif event.kind == "migration":
            _with_state(islands, data.get("to"), data.get("state"))
        elif event.kind == "revert" and islands is not None and isinstance(data.get("to"), str):
            target = data["to"]
            islands = [dataclasses.replace(i, head_id=target, regressions=0) for i in islands]
    position.islands = islands
    numbered = {program.iteration: program for program in programs}
    position.in_flight = [
        program for number, program in sorted(numbered.items()) if number not in position.decided
    ]
    seen = position.decided | set(numbered)
    position.next_iteration = max(seen, default=-1) + 1
    position.to_propose = [n for n in range(position.next_iteration) if n not in seen]
    return position
