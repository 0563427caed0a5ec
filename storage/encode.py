"""From the sandbox's evaluation JSON to column values: keys, episode rows, compressed traces.

Storage treats the sandbox's result as a plain dict (it must not import `sandbox`), so the few
facts it relies on are checked here, with messages that say which field is wrong.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storage.errors import InvalidInputError
from storage.models import EVALUATION_STATUSES

TRACE_CAP_BYTES = 1 << 20
"""Default cap on one stored trace (compressed). A trace above it is cut down, never refused:
losing an evaluation because its trace is large would be worse than losing trace detail.
The action log is exempt (see `encode_trace`): it is what every stored score is verified from."""

KEPT_WHOLE = "actions"
"""The trace key that is never dropped: one character per step (`evocade verify` and
`evocade replay` re-simulate the episode from it), ~1 byte per step before compression."""

_ZLIB_LEVEL = 6

RESPONSE_CAP_BYTES = 256 * 1024
"""Default cap on one stored LLM response (UTF-8 bytes). A useful answer is a program of a few
KB; a server that sends megabytes (one sent 5 MB, 23 times) must not fill the database. The
program is extracted from the full answer before storage cuts it; the cut is recorded."""


def storable_text(text: str) -> str:
    """Untrusted text (an LLM reply, an error) as every backend can store it: NUL characters
    (PostgreSQL refuses them) become U+FFFD, lone surrogates (not UTF-8 at all) become "?"."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def cap_text(text: str, cap_bytes: int) -> tuple[str, int]:
    """`text` (storable: see `storable_text`) cut to at most `cap_bytes` of UTF-8, never inside
    a character, and how many bytes were cut (0: it fitted)."""
    data = text.encode("utf-8")
    if len(data) <= cap_bytes:
        return text, 0
    kept = data[:cap_bytes].decode("utf-8", errors="ignore")
    return kept, len(data) - len(kept.encode("utf-8"))


def canonical_json(value: Any) -> str:
    """Key-sorted, compact JSON: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def env_key(game: str, env: Mapping[str, Any]) -> str:
    """The string under which evaluations with the same game and env settings are found.

    Example: `Pong {"frameskip":4,"max_steps":27000,"repeat_action_probability":0.25}`.
    """
    return f"{game} {canonical_json(dict(env))}"


def holdout_env_key(game: str, env: Mapping[str, Any]) -> str:
    """The key of held-out evaluations: the env key with a ` holdout` suffix.

    Held-out seeds confirm a candidate before it may become a run's best. Their scores must not
    compete with training scores when a program's representative evaluation is chosen
    (history, lineage, the runs listing rank the run's own key first), so they live under a key
    of their own; `best_program(run, holdout_env_key(...))` asks for the best confirmed one.
    """
    return f"{env_key(game, env)} holdout"


def seeds_key(seeds: Sequence[int]) -> str:
    """Seeds in their given order (order matters: episode i uses seeds[i]), e.g. "0,1,2"."""
    return ",".join(str(int(seed)) for seed in seeds)


@dataclass(frozen=True)
class EncodedTrace:
    data: bytes
    raw_bytes: int
    truncated: bool

    @property
    def stored_bytes(self) -> int:
        return len(self.data)


def _compress(trace: Mapping[str, Any]) -> tuple[bytes, int]:
    raw = canonical_json(trace).encode()
    return zlib.compress(raw, _ZLIB_LEVEL), len(raw)


def encode_trace(trace: Mapping[str, Any], cap_bytes: int = TRACE_CAP_BYTES) -> EncodedTrace:
    """zlib-compressed JSON, at most `cap_bytes` long unless the action log alone is longer.

    Above the cap, detail goes first where it is cheapest to lose: snapshots are halved (the
    latest kept: they hold the end of the episode), then the life-loss and reward events (both
    can be recomputed from the actions). The action log is never dropped: it is ~1 byte per
    step (a 27,000-step episode compresses to a few KB), and without it the episode can
    neither be verified nor replayed. So a trace exceeds the cap only when its actions alone
    do. What remains is marked `storage_truncated`.
    """
    try:
        data, raw_bytes = _compress(trace)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"trace is not plain JSON: {error}") from error
    if len(data) <= cap_bytes:
        return EncodedTrace(data, raw_bytes, truncated=False)
    reduced = dict(trace)
    reduced["storage_truncated"] = True
    reduced["truncated"] = True
    snapshots = list(reduced.get("snapshots") or [])
    while snapshots:
        snapshots = snapshots[len(snapshots) // 2 :] if len(snapshots) > 1 else []
        reduced["snapshots"] = snapshots
        data, raw_bytes = _compress(reduced)
        if len(data) <= cap_bytes:
            return EncodedTrace(data, raw_bytes, truncated=True)
    for key in ("life_losses", "rewards"):
        reduced.pop(key, None)
        data, raw_bytes = _compress(reduced)
        if len(data) <= cap_bytes:
            return EncodedTrace(data, raw_bytes, truncated=True)
    kept = {"storage_truncated": True, "truncated": True}
    if KEPT_WHOLE in trace:
        kept[KEPT_WHOLE] = trace[KEPT_WHOLE]
    data, raw_bytes = _compress(kept)
    return EncodedTrace(data, raw_bytes, truncated=True)


def decode_trace(data: bytes) -> dict[str, Any]:
    value = json.loads(zlib.decompress(data))
    if not isinstance(value, dict):
        raise InvalidInputError("stored trace is not a JSON object")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"evaluation field {field!r} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise InvalidInputError(f"evaluation field {field!r} must be finite, not {value!r}")
    return float(value)


def _status(value: Any, field: str) -> str:
    if value not in EVALUATION_STATUSES:
        allowed = ", ".join(EVALUATION_STATUSES)
        raise InvalidInputError(f"{field} {value!r} is not one of: {allowed}")
    return str(value)


EPISODE_FIELDS = (
    "seed",
    "status",
    "return",
    "length",
    "error",
    "wall_seconds",
    "policy_cpu_seconds",
    "policy_peak_memory_mb",
    "output",
    "node",  # the cluster node that played it (Ray executor); absent when played locally
)
"""What of an episode goes into `evaluation.episodes` (its trace goes to the trace table)."""


@dataclass(frozen=True)
class EvaluationRow:
    """The column values of one evaluation, and its traces (one per episode, or None)."""

    values: dict[str, Any]
    traces: list[tuple[int, int, int, Mapping[str, Any]]]  # (episode, seed, steps, trace)


def evaluation_row(
    result: Mapping[str, Any],
    traces: Sequence[Mapping[str, Any] | None] | None,
    seeds: Sequence[int] | None,
    *,
    holdout: bool = False,
) -> EvaluationRow:
    """Validate the sandbox's result dict and split it into columns and traces; a `holdout`
    evaluation is keyed by `holdout_env_key`."""
    for field in ("game", "env", "status"):
        if field not in result:
            raise InvalidInputError(f"evaluation result lacks {field!r}")
    game, env = result["game"], result["env"]
    if not isinstance(game, str) or not isinstance(env, Mapping):
        raise InvalidInputError("evaluation result needs 'game' (a string) and 'env' (an object)")
    status = _status(result["status"], "evaluation status")
    raw_episodes = result.get("episodes") or []
    if not isinstance(raw_episodes, Sequence):
        raise InvalidInputError("evaluation field 'episodes' must be a list")
    if traces is not None and len(traces) != len(raw_episodes):
        raise InvalidInputError(f"{len(traces)} traces given for {len(raw_episodes)} episodes")

    episodes, episode_traces = _episodes(raw_episodes, traces)
    mean_return, total_steps = _totals(result, episodes)
    if seeds is None:
        seeds = result.get("seeds") or [episode["seed"] for episode in episodes]
    seed_list = [int(seed) for seed in seeds]

    values: dict[str, Any] = {
        "game": game,
        "env": dict(env),
        "env_key": holdout_env_key(game, env) if holdout else env_key(game, env),
        "seeds": seed_list,
        "seeds_key": seeds_key(seed_list),
        "episodes": episodes,
        "mean_return": mean_return,
        "total_steps": int(total_steps),
        "backend": str(result.get("backend") or "unknown"),
        "checked": bool(result.get("checked", True)),
        "check_report": result.get("check"),
        "limits": result.get("limits"),
        "wall_seconds": _number(result.get("wall_seconds", 0.0), "wall_seconds"),
        "cpu_seconds": sum(
            _number(e.get("policy_cpu_seconds", 0.0), "policy_cpu_seconds") for e in episodes
        ),
        "peak_memory_mb": max(
            (
                _number(e.get("policy_peak_memory_mb", 0.0), "policy_peak_memory_mb")
                for e in episodes
            ),
            default=0.0,
        ),
        "status": status,
    }
    return EvaluationRow(values, episode_traces)


_EpisodeTrace = tuple[int, int, int, Mapping[str, Any]]  # index, seed, length, trace


def _episodes(
    raw_episodes: Sequence[Any], traces: Sequence[Mapping[str, Any] | None] | None
) -> tuple[list[dict[str, Any]], list[_EpisodeTrace]]:
    """Each episode validated and cut to `EPISODE_FIELDS`, and the traces of those that have
    one (given apart in `traces`, else inside the episode)."""
    episodes: list[dict[str, Any]] = []
    episode_traces: list[_EpisodeTrace] = []
    for index, episode in enumerate(raw_episodes):
        if not isinstance(episode, Mapping):
            raise InvalidInputError(f"episode {index} is not an object")
        for field in ("seed", "status", "return", "length"):
            if field not in episode:
                raise InvalidInputError(f"episode {index} lacks {field!r}")
        _status(episode["status"], f"episode {index} status")
        _number(episode["return"], f"episodes[{index}].return")
        row = {field: episode[field] for field in EPISODE_FIELDS if field in episode}
        episodes.append(row)
        trace = traces[index] if traces is not None else episode.get("trace")
        if trace is not None:
            if not isinstance(trace, Mapping):
                raise InvalidInputError(f"trace of episode {index} is not an object")
            episode_traces.append((index, int(episode["seed"]), int(episode["length"]), trace))
    return episodes, episode_traces


def _totals(result: Mapping[str, Any], episodes: list[dict[str, Any]]) -> tuple[float | None, Any]:
    """The mean return and total steps the result states, else computed from the episodes."""
    returns = [float(episode["return"]) for episode in episodes]
    mean_return = result.get("mean_return")
    if mean_return is None and returns:
        mean_return = sum(returns) / len(returns)
    if mean_return is not None:
        mean_return = _number(mean_return, "mean_return")
    total_steps = result.get("total_steps")
    if total_steps is None:
        total_steps = sum(int(episode["length"]) for episode in episodes)
    return mean_return, total_steps
