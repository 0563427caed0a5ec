"""RunConfig across resumes: the settings in force are the created ones plus each resume's
changes, in order (pure functions, no sandbox)."""

from __future__ import annotations

from typing import Any

from engine.config import RunConfig, config_changes, config_in_force


def test_config_in_force_applies_each_resumes_changes_in_order() -> None:
    created = RunConfig(game="Pong", iterations=10).to_json()
    resumes: list[dict[str, Any]] = [
        {"from": "stopped", "to": "running"},  # a resume that changed nothing
        {"config_changed": {"iterations": [10, 20], "ray_address": [None, "10.0.0.1:6379"]}},
        {"config_changed": {"iterations": [20, 30]}},
    ]
    config = config_in_force(created, resumes)
    assert (config.iterations, config.ray_address) == (30, "10.0.0.1:6379")
    assert config_in_force(created, []) == RunConfig(game="Pong", iterations=10)


def test_config_in_force_reads_a_config_stored_before_newer_settings_existed() -> None:
    stored = {"game": "Pong", "iterations": 5, "a_setting_since_removed": 1}
    assert config_in_force(stored, []) == RunConfig(game="Pong", iterations=5)


def test_config_changes_names_only_what_differs() -> None:
    before = RunConfig(game="Pong", iterations=10, max_cost=None)
    after = RunConfig(game="Pong", iterations=12, max_cost=1.5)
    assert config_changes(before, after) == {"iterations": (10, 12), "max_cost": (None, 1.5)}
    assert config_changes(before, before) == {}
