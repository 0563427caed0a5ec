"""Turning the sandbox's result dict into columns: keys, validation, trace compression."""

from __future__ import annotations

import pytest

from storage import InvalidInputError, env_key, seeds_key
from storage.encode import decode_trace, encode_trace, evaluation_row
from tests.storage.factories import PONG_ENV, pong_trace, rejected_result, result


def test_encode_env_key_ignores_dict_order() -> None:
    shuffled = dict(reversed(list(PONG_ENV.items())))
    assert env_key("Pong", PONG_ENV) == env_key("Pong", shuffled)
    assert env_key("Pong", PONG_ENV) != env_key("Breakout", PONG_ENV)
    assert env_key("Pong", PONG_ENV) != env_key("Pong", {**PONG_ENV, "frameskip": 2})


def test_encode_seeds_key_keeps_order() -> None:
    assert seeds_key([0, 1, 2]) == "0,1,2"
    assert seeds_key([2, 1]) != seeds_key([1, 2])


def test_encode_trace_round_trips() -> None:
    trace = pong_trace(5000)
    encoded = encode_trace(trace)
    assert not encoded.truncated
    assert encoded.stored_bytes < encoded.raw_bytes / 3
    assert decode_trace(encoded.data) == trace


def test_encode_trace_over_cap_is_cut_down_not_refused() -> None:
    trace = pong_trace(5000)
    full = encode_trace(trace).stored_bytes
    encoded = encode_trace(trace, cap_bytes=full // 2)
    assert encoded.truncated and encoded.stored_bytes <= full // 2
    kept = decode_trace(encoded.data)
    assert kept["storage_truncated"] is True
    assert kept["rewards"] == trace["rewards"]  # events survive; snapshots go first
    assert kept["actions"] == trace["actions"]
    assert 0 < len(kept["snapshots"]) < len(trace["snapshots"])
    assert kept["snapshots"][-1] == trace["snapshots"][-1]


def test_encode_trace_never_drops_the_action_log() -> None:
    """Under any cap the full action log stays: the episode can always be verified."""
    trace = pong_trace(27_000)
    actions_only = encode_trace({"actions": trace["actions"]}).stored_bytes
    for cap in (64, actions_only, actions_only + 200):
        kept = decode_trace(encode_trace(trace, cap_bytes=cap).data)
        assert kept["actions"] == trace["actions"] and len(kept["actions"]) == 27_000
        assert kept["storage_truncated"] is True
    # the action log compresses to well under a byte per step, far below the default cap
    assert actions_only < 27_000
    roomy = decode_trace(encode_trace(trace, cap_bytes=actions_only + 400).data)
    assert "snapshots" not in roomy or len(roomy["snapshots"]) < len(trace["snapshots"])


def test_encode_trace_without_actions_still_fits_a_tiny_cap() -> None:
    trace = {k: v for k, v in pong_trace(5000).items() if k != "actions"}
    tiny = encode_trace(trace, cap_bytes=64)
    assert tiny.stored_bytes <= 64 and decode_trace(tiny.data)["storage_truncated"] is True


def test_encode_evaluation_row_splits_columns_and_traces() -> None:
    row = evaluation_row(result([-21.0, -19.0], lengths=[800, 900]), None, None)
    assert row.values["mean_return"] == -20.0
    assert row.values["total_steps"] == 1700
    assert row.values["seeds"] == [0, 1] and row.values["seeds_key"] == "0,1"
    assert row.values["peak_memory_mb"] == 21.0 and row.values["cpu_seconds"] == 0.5
    assert all("trace" not in episode for episode in row.values["episodes"])
    assert [(episode, seed, steps) for episode, seed, steps, _ in row.traces] == [
        (0, 0, 800),
        (1, 1, 900),
    ]


def test_encode_rejected_result_takes_seeds_from_caller() -> None:
    row = evaluation_row(rejected_result(), None, [0, 1, 2])
    assert row.values["status"] == "rejected"
    assert row.values["mean_return"] is None and row.values["episodes"] == []
    assert row.values["seeds_key"] == "0,1,2"
    assert row.values["check_report"]["ok"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "great"}, "status 'great'"),
        ({"game": None}, "game"),
        ({"episodes": [{"seed": 0, "status": "ok", "length": 3}]}, "lacks 'return'"),
        (
            {"episodes": [{"seed": 0, "status": "ok", "return": float("nan"), "length": 3}]},
            "finite",
        ),
    ],
)
def test_encode_invalid_result_is_refused(change: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        evaluation_row({**result(), **change}, None, None)
