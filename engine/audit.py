"""Recompute stored scores from stored action logs: `evocade verify` and the replays' input.

Every episode the harness reports carries its full action log (one character per step), and
the emulator replays it deterministically from the episode's seed and env setting
(`sandbox.replay`). So a stored return and length can be checked by anyone, without trusting
the sandbox that produced them. An episode that ended in error or timeout has a partial return
and a partial log: replaying the log must give exactly that partial return and length.

Deciding (what a stored episode needs, whether a replay matches) is pure and tested without an
emulator; `verify_evaluation` is the one function that replays.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sandbox.replay import EpisodeLog, Replayer, ReplayError, ReplayOutcome
from storage import Store
from storage.models import Evaluation, short_id

Verdict = Literal["match", "mismatch", "unverifiable"]
RETURN_TOLERANCE = 1e-6  # Atari rewards are small integers; sums of them compare exactly


class Unreplayable(Exception):
    """A stored episode that cannot be replayed; the message says why (one line)."""


def episode_log(
    evaluation: Evaluation, episode_index: int, trace: Mapping[str, Any] | None
) -> EpisodeLog:
    """What replaying episode `episode_index` of `evaluation` needs, or `Unreplayable`."""
    episodes = evaluation.episodes or []
    if not 0 <= episode_index < len(episodes):
        raise Unreplayable(
            f"evaluation {short_id(evaluation.id)} has no episode {episode_index} "
            f"(it has {len(episodes)})"
        )
    env = evaluation.env or {}
    if "frameskip" not in env or "repeat_action_probability" not in env:
        raise Unreplayable("the evaluation's env setting lacks frameskip or sticky actions")
    if trace is None:
        raise Unreplayable("no trace was stored for this episode")
    actions = trace.get("actions")
    if not isinstance(actions, str):
        if trace.get("storage_truncated"):
            raise Unreplayable(
                "its trace lost the action log to the storage size cap (stored before the cap "
                "kept action logs whole)"
            )
        raise Unreplayable("its stored trace holds no action log")
    return EpisodeLog(
        game=evaluation.game,
        seed=int(episodes[episode_index]["seed"]),
        frameskip=int(env["frameskip"]),
        repeat_action_probability=float(env["repeat_action_probability"]),
        actions=actions,
    )


@dataclass(frozen=True)
class EpisodeCheck:
    """One stored episode against its replay."""

    evaluation_id: str
    program_id: str
    episode: int
    seed: int
    status: str  # the stored episode status (ok, error, timeout, ...)
    stored_return: float
    stored_length: int
    replayed_return: float | None
    replayed_length: int | None
    verdict: Verdict
    reason: str  # why it mismatches or cannot be verified; "" for a match

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    stored_return: float,
    stored_length: int,
    status: str,
    max_steps: int | None,
    outcome: ReplayOutcome,
    stored_rewards: Sequence[Sequence[float]] | None = None,
) -> str:
    """Why the replay disagrees with what was stored; "" when it agrees.

    Besides return and length: the log must not go on after the emulator ended the episode,
    and an `ok` episode shorter than the step cap must be one the emulator ended right at its
    last step (the harness stops a clean episode nowhere else).
    """
    problems: list[str] = []
    if outcome.logged_steps != stored_length:
        problems.append(
            f"the action log has {outcome.logged_steps} steps, the stored length is {stored_length}"
        )
    if outcome.ended_early:
        problems.append(
            f"the emulator ended the episode at step {outcome.length}, before the log's end"
        )
    if not math.isclose(outcome.episode_return, stored_return, abs_tol=RETURN_TOLERANCE):
        problems.append(f"return stored {stored_return:g}, replayed {outcome.episode_return:g}")
        first = _first_reward_difference(stored_rewards, outcome.rewards)
        if first is not None:
            problems.append(f"rewards first differ at step {first}")
    elif (
        status == "ok"
        and not outcome.ended_early
        and not outcome.terminated
        and max_steps is not None
        and stored_length < max_steps
    ):
        problems.append(
            f"stored as a clean episode of {stored_length} steps, under the {max_steps}-step "
            "cap, but the emulator had not ended it"
        )
    return "; ".join(problems)


def _first_reward_difference(
    stored: Sequence[Sequence[float]] | None, replayed: Sequence[tuple[int, float]]
) -> int | None:
    if stored is None:
        return None
    stored_pairs = [(int(step), float(reward)) for step, reward in stored]
    for (a_step, a_reward), (b_step, b_reward) in zip(stored_pairs, replayed, strict=False):
        if a_step != b_step or not math.isclose(a_reward, b_reward):
            return min(a_step, b_step)
    if len(stored_pairs) != len(replayed):
        longer = stored_pairs if len(stored_pairs) > len(replayed) else list(replayed)
        return longer[min(len(stored_pairs), len(replayed))][0]
    return None


def verify_evaluation(
    store: Store,
    evaluation: Evaluation,
    replayer: Callable[[EpisodeLog], ReplayOutcome],
) -> list[EpisodeCheck]:
    """Replay every episode of the evaluation; one check each (none for a rejected one)."""
    traces = {trace.episode: trace.data for trace in store.traces(evaluation.id)}
    max_steps = (evaluation.env or {}).get("max_steps")
    checks: list[EpisodeCheck] = []
    for index, episode in enumerate(evaluation.episodes or []):
        stored_return = float(episode.get("return", 0.0))
        stored_length = int(episode.get("length", 0))
        pending = EpisodeCheck(
            evaluation_id=evaluation.id,
            program_id=evaluation.program_id,
            episode=index,
            seed=int(episode.get("seed", -1)),
            status=str(episode.get("status")),
            stored_return=stored_return,
            stored_length=stored_length,
            replayed_return=None,
            replayed_length=None,
            verdict="unverifiable",
            reason="",
        )
        trace = traces.get(index)
        try:
            log = episode_log(evaluation, index, trace)
            outcome = replayer(log)
        except (Unreplayable, ReplayError) as error:
            checks.append(dataclasses.replace(pending, reason=str(error)))
            continue
        reason = judge(
            stored_return,
            stored_length,
            pending.status,
            int(max_steps) if max_steps is not None else None,
            outcome,
            trace.get("rewards") if trace is not None else None,
        )
        checks.append(
            dataclasses.replace(
                pending,
                replayed_return=outcome.episode_return,
                replayed_length=outcome.length,
                verdict="mismatch" if reason else "match",
                reason=reason,
            )
        )
    return checks


def mean_mismatch(evaluation: Evaluation, checks: Sequence[EpisodeCheck]) -> str:
    """Why the stored mean return disagrees with the replayed episodes; "" when it agrees
    (or when some episode could not be replayed, so there is no replayed mean)."""
    replayed = [check.replayed_return for check in checks]
    if not replayed or evaluation.mean_return is None or any(r is None for r in replayed):
        return ""
    mean = sum(r for r in replayed if r is not None) / len(replayed)
    if math.isclose(mean, evaluation.mean_return, abs_tol=RETURN_TOLERANCE):
        return ""
    return f"mean return stored {evaluation.mean_return:g}, replayed {mean:g}"


@dataclass(frozen=True)
class EvaluationAudit:
    evaluation_id: str
    program_id: str
    status: str
    mean_problem: str  # "" when the stored mean agrees with the replayed episodes
    episodes: list[EpisodeCheck]

    @property
    def matches(self) -> bool:
        return not self.mean_problem and all(c.verdict != "mismatch" for c in self.episodes)


@dataclass(frozen=True)
class AuditReport:
    """The outcome of `evocade verify` on one run or one evaluation."""

    target: str  # "run 1a2b3c4d" or "evaluation 5e6f7a8b"
    evaluations: list[EvaluationAudit]

    def episodes(self, verdict: Verdict) -> list[EpisodeCheck]:
        return [c for audit in self.evaluations for c in audit.episodes if c.verdict == verdict]

    @property
    def mean_problems(self) -> list[EvaluationAudit]:
        return [audit for audit in self.evaluations if audit.mean_problem]

    @property
    def passed(self) -> bool:
        return all(audit.matches for audit in self.evaluations)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "passed": self.passed,
            "matched": len(self.episodes("match")),
            "mismatched": len(self.episodes("mismatch")),
            "unverifiable": len(self.episodes("unverifiable")),
            "evaluations": [
                {
                    "evaluation_id": audit.evaluation_id,
                    "program_id": audit.program_id,
                    "status": audit.status,
                    "mean_problem": audit.mean_problem,
                    "episodes": [check.to_json() for check in audit.episodes],
                }
                for audit in self.evaluations
            ],
        }


def audit(
    store: Store,
    target: str,
    evaluations: Sequence[Evaluation],
    replayer: Callable[[EpisodeLog], ReplayOutcome] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Verify each evaluation in turn (`progress(done, total)` after each).

    `replayer` defaults to the real emulator (`sandbox.replay.Replayer`).
    """
    if replayer is None:
        with Replayer() as emulator:
            return audit(store, target, evaluations, emulator.replay, progress)
    audits: list[EvaluationAudit] = []
    for done, evaluation in enumerate(evaluations, start=1):
        checks = verify_evaluation(store, evaluation, replayer)
        audits.append(
            EvaluationAudit(
                evaluation.id,
                evaluation.program_id,
                evaluation.status,
                mean_mismatch(evaluation, checks),
                checks,
            )
        )
        if progress is not None:
            progress(done, len(evaluations))
    return AuditReport(target, audits)
