"""Every setting of an optimization run, typed, with units in the names.

The config is stored with the run (as JSON), so `evocade run --resume RUN` continues with exactly
the settings it started with; only budgets and where a Ray run plays may change on resume, and
those changes are kept in the resume's event (`config_in_force`).

RunConfig is the one typed source of the settings: `evocade run` and `evocade evaluate` take
their options' defaults from its fields (`RUN_DEFAULTS`), a TOML file is checked against its
type hints (`config_from_settings`), and both commands validate through `RunConfig.validate`,
whose bounds come from `sandbox.settings` rather than copies of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.proposers.base import ProposerName
from engine.selection import SelectionRule
from sandbox.names import BackendName
from sandbox.settings import (
    DEFAULT_MAX_STEPS,
    DEFAULT_REPEAT_ACTION_PROBABILITY,
    EnvSettings,
    Limits,
)

ExecutorName = Literal["local", "ray"]

BUDGET_FIELDS = ("iterations", "max_env_steps", "max_tokens", "max_cost", "max_time_seconds")


@dataclass(frozen=True)
class RunConfig:
    game: str
    iterations: int = 20  # proposals to make (the seed program is not one)
    episodes: int = 3  # full evaluation: seeds first_seed .. first_seed + episodes - 1
    first_seed: int = 0
    smoke_max_steps: int = 300  # stage 1: one short episode; the full seed set only if clean
    max_steps: int = DEFAULT_MAX_STEPS  # per full episode
    deterministic: bool = False  # frameskip 4, no sticky actions (the paper's setting)
    repeat_action_probability: float = DEFAULT_REPEAT_ACTION_PROBABILITY
    max_env_steps: int | None = None  # budget: emulator steps played (reused results are free)
    max_tokens: int | None = None  # budget: LLM tokens in + out
    max_cost: float | None = None  # budget: LLM cost, in the price table's currency
    max_time_seconds: float | None = None  # budget: wall time of this invocation
    regress_patience: int = 5  # roll back to the best after this many regressions in a row
    regress_ratio: float = 0.8  # a candidate regresses when below best - (1 - ratio) * |best|
    proposer: ProposerName = "mutate"
    # "follow": every clean candidate becomes the head (the paper's loop: the LLM keeps working
    # on its latest idea), with rollback after `regress_patience` regressions; "greedy": the
    # head only moves to a candidate that does not regress (hill climbing, for the mutator).
    # None picks by proposer.
    selection: SelectionRule | None = None
    model: str | None = None
    base_url: str | None = None
    mutation_seed: int = 0
    sandbox: BackendName = "auto"
    check: bool = True
    act_seconds: float = Limits().act_seconds
    memory_mb: int = Limits().memory_mb
    prices: dict[str, list[float]] = field(default_factory=dict)  # model -> [in, out] per 1M
    # The population engine (engine.population): candidates in flight at once (None: enough to
    # keep every sandbox slot busy), lineages evolved side by side, and how often (in decided
    # iterations) the worst island is reseeded from the best one.
    concurrency: int | None = None
    islands: int = 1
    migrate_every: int = 10
    # A candidate that beats its island's best on the training seeds is played on these
    # held-out seeds before it may become the best (0: the training score decides).
    holdout_episodes: int = 3
    holdout_first_seed: int = 1000
    executor: ExecutorName = "local"  # "local": this machine's sandboxes; "ray": a Ray cluster's
    # Where a Ray run plays, not what it computes: both may change on resume (the cluster's
    # address changes when it restarts). None: RAY_ADDRESS, and every core free at the start.
    ray_address: str | None = None
    ray_slots: int | None = None  # at most this many of the cluster's cores
    llm_timeout_seconds: float = 120.0  # per request, then retried with backoff
    llm_retries: int = 4

    def full_env(self) -> EnvSettings:
        return self._env(self.max_steps)

    def smoke_env(self) -> EnvSettings:
        return self._env(min(self.smoke_max_steps, self.max_steps))

    def _env(self, max_steps: int) -> EnvSettings:
        if self.deterministic:
            return EnvSettings.deterministic(max_steps=max_steps)
        return EnvSettings(
            repeat_action_probability=self.repeat_action_probability, max_steps=max_steps
        )

    @property
    def selection_rule(self) -> SelectionRule:
        return self.selection or ("follow" if self.proposer == "llm" else "greedy")

    @property
    def seeds(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.episodes))

    @property
    def holdout_seeds(self) -> list[int]:
        first = self.holdout_first_seed
        return list(range(first, first + self.holdout_episodes))

    def in_flight(self, slots: int) -> int:
        """Candidates in flight: as configured, else enough to keep `slots` sandboxes busy.

        A mutation costs nothing to propose, so one spare candidate covers the moment between
        one candidate's last episode and the next one's first. An LLM call takes seconds to a
        minute, so the LLM proposer starts with two per slot and then follows the measured
        call latency and evaluation cost, up to 8 per slot (the engine's `candidates_to_keep`;
        a 429 slows every call in flight: they share one backoff gate).
        """
        if self.concurrency is not None:
            return self.concurrency
        return slots * 2 if self.proposer == "llm" else slots + 1

    def limits(self) -> Limits:
        return Limits(act_seconds=self.act_seconds, memory_mb=self.memory_mb)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def with_placement(self, ray_address: str | None, ray_slots: int | None) -> RunConfig:
        """The same run played elsewhere: a new Ray address or core count (None: as before)."""
        changes: dict[str, Any] = {"ray_address": ray_address, "ray_slots": ray_slots}
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def with_budgets(self, **budgets: Any) -> RunConfig:
        """The same run with some budgets replaced (None leaves a budget as it was)."""
        changes = {k: v for k, v in budgets.items() if k in BUDGET_FIELDS and v is not None}
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ValueError with a one-line reason for settings that cannot work, naming the
        option as `evocade run` and `evaluate` spell it (both validate through here)."""
        for name in POSITIVE_FIELDS:
            value = getattr(self, name)
            _require(name, value, "at least 1", value >= 1)
        first = self.first_seed
        _require("first_seed", first, "0 or more (seeds S..S+N-1 are used)", first >= 0)
        _require("regress_ratio", self.regress_ratio, "in (0, 1]", 0 < self.regress_ratio <= 1)
        p = self.repeat_action_probability
        _require("repeat_action_probability", p, "between 0 and 1", 0.0 <= p <= 1.0)
        _require(
            "act_seconds",
            self.act_seconds,
            f"more than 0 and at most {MAX_ACT_SECONDS:g} seconds",
            0 < self.act_seconds <= MAX_ACT_SECONDS,
        )
        _require(
            "memory_mb",
            self.memory_mb,
            f"between {MIN_MEMORY_MB} and {MAX_MEMORY_MB} MB (the sandbox's own limit)",
            MIN_MEMORY_MB <= self.memory_mb <= MAX_MEMORY_MB,
        )
        for name in BUDGET_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None:
                _require(name, value, "positive", value > 0)
        if self.concurrency is not None:
            _require("concurrency", self.concurrency, "at least 1", self.concurrency >= 1)
        if self.ray_slots is not None:
            _require("ray_slots", self.ray_slots, "at least 1", self.ray_slots >= 1)
        for name in ("holdout_episodes", "llm_retries"):
            _require(name, getattr(self, name), "0 or more", getattr(self, name) >= 0)
        self._validate_choices()

    def _validate_choices(self) -> None:
        """The closed sets (checked against their Literal types) and the combinations."""
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                shown = " or ".join(str(choice) for choice in allowed if choice is not None)
                raise ValueError(f"unknown {name} {value!r}: use {shown}")
        if set(self.holdout_seeds) & set(self.seeds):
            raise ValueError(
                "held-out seeds must differ from the training seeds: raise holdout-first-seed"
            )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"--base-url must start with http:// or https:// (got {self.base_url!r})"
            )
        if self.proposer == "llm" and not self.model:
            raise ValueError("the llm proposer needs --model")


def config_in_force(created: Mapping[str, Any], resumes: Iterable[Mapping[str, Any]]) -> RunConfig:
    """The settings a run now has: those it was created with, then each resume's changes in
    order. The run row is append-only, so a resume's raised budget or new Ray address lives in
    its `run_resumed` event's data (`config_changed`): a later plain `--resume` keeps them."""
    settings = dict(created)
    for data in resumes:
        for name, (_, after) in (data.get("config_changed") or {}).items():
            settings[name] = after
    return RunConfig.from_json(settings)


def config_changes(before: RunConfig, after: RunConfig) -> dict[str, tuple[Any, Any]]:
    """Each setting that differs, as (before, after), in field order."""
    old, new = before.to_json(), after.to_json()
    return {name: (old[name], new[name]) for name in new if old.get(name) != new[name]}


# Bounds the sandbox sets (sandbox.settings.Limits), not copies of them: one act() call may not
# outlast the episode's own wall budget, and the policy process lives inside the sandbox's
# cgroup, so it cannot have more memory than that.
MAX_ACT_SECONDS = Limits().episode_wall_seconds
MIN_MEMORY_MB = next(m.ge for m in Limits.model_fields["memory_mb"].metadata if hasattr(m, "ge"))
MAX_MEMORY_MB = Limits().sandbox_memory_mb

POSITIVE_FIELDS = (
    "iterations",
    "episodes",
    "smoke_max_steps",
    "max_steps",
    "regress_patience",
    "islands",
    "migrate_every",
    "llm_timeout_seconds",
)
CHOICES: dict[str, tuple[object, ...]] = {
    "proposer": typing.get_args(ProposerName),
    "selection": (None, *typing.get_args(SelectionRule)),
    "executor": typing.get_args(ExecutorName),
}


def _require(name: str, value: float, allowed: str, ok: bool) -> None:
    if not ok:
        raise ValueError(f"{option_name(name)} must be {allowed} (got {value:g})")


def option_name(setting: str) -> str:
    """The command-line option that sets RunConfig's field `setting` (`--max-time` for
    max_time_seconds, `--seed` for first_seed)."""
    name = next((alias for alias, field in SETTING_ALIASES.items() if field == setting), setting)
    return f"--{name.replace('_', '-')}"


def default(setting: str) -> Any:
    """RunConfig's default for the field `setting`: the CLI's options take theirs from here."""
    return RUN_DEFAULTS[setting]


SETTING_ALIASES = {
    "max_time": "max_time_seconds",
    "llm_timeout": "llm_timeout_seconds",
    "seed": "first_seed",
}


def config_from_settings(data: Mapping[str, Any]) -> RunConfig:
    """A RunConfig from settings (a TOML file's, the command line's); a ValueError naming the
    key for one that RunConfig does not have (with the closest name) or of the wrong type."""
    hints = typing.get_type_hints(RunConfig)
    values: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = SETTING_ALIASES.get(raw_key.replace("-", "_"), raw_key.replace("-", "_"))
        if key not in hints:
            close = difflib.get_close_matches(key, list(hints), n=1)
            hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
            raise ValueError(f"unknown setting {raw_key!r}{hint}")
        if not _fits(value, hints[key]):
            raise ValueError(f"setting {raw_key!r} must be {_describe(hints[key])}, got {value!r}")
        values[key] = value
    return RunConfig(**values)


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(v, args[1]) for v in value.values())
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args if arg is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin is dict:
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, str(hint)
    )


RUN_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(RunConfig) if f.default is not dataclasses.MISSING
}
