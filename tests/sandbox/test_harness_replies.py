"""The harness <-> policy runner hot path, with the real runner process (confined by its own
rlimits and seccomp filter; no sandbox around it, so no bubblewrap needed).

The runner answers a plain in-range int with pre-encoded bytes and everything else through
its full check; both paths must give the harness exactly what the slow path used to, and the
policy must see exactly the observation the harness built.
"""

from __future__ import annotations

import site
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.runtime.policy_process import PolicyProcess, parse_reply, policy_argv

ROOT = Path(__file__).resolve().parents[2]
OBS = {
    "Player": {"x": 140, "y": 80, "w": 4, "h": 15, "dx": 0, "dy": -2},
    "Ball": {"x": 78, "y": 120, "w": 2, "h": 4, "dx": -3, "dy": 1},
    "Enemy": [],
    "Alien": [{"x": 1, "y": 2, "w": 8, "h": 10, "dx": 0, "dy": 0}] * 3,
    "lives": 3,
}


@pytest.fixture
def runner() -> Iterator[Any]:
    started: list[PolicyProcess] = []

    def start(source: str) -> PolicyProcess:
        argv = policy_argv(sys.executable, str(ROOT), site.getsitepackages())
        policy = PolicyProcess.spawn(argv, {"PYTHONHASHSEED": "0"}, None)
        started.append(policy)
        setup = {
            "source": source,
            "restricted": False,
            "seed": 0,
            "n_actions": 6,
            "memory_mb": 512,
            "cpu_seconds": 60,
            "output_bytes": 4096,
        }
        assert policy.send(setup, 60) is True
        assert parse_reply(policy.reader.read_line(120) or b"") == {"ready": True}
        return policy

    yield start
    for policy in started:
        policy.stop()
        policy.exited_within(5)


def _act(policy: PolicyProcess, obs: dict[str, Any]) -> int | dict[str, Any]:
    assert policy.send(obs, 30) is True
    line = policy.reader.read_line(60)
    assert line, "the runner did not answer"
    return parse_reply(line)


def test_harness_replies_policy_sees_the_observation_sent(runner: Any) -> None:
    policy = runner(
        f"EXPECTED = {OBS!r}\n"
        "def act(obs):\n"
        "    if obs != EXPECTED or type(obs['Enemy']) is not list:\n"
        "        raise ValueError(repr(obs))\n"
        "    obs['Alien'][0]['x'] = 99  # mutating one step's obs must not leak into the next\n"
        "    obs.clear()\n"
        "    return 4\n"
    )
    for _ in range(3):
        assert _act(policy, OBS) == 4


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("0", 0),
        ("5", 5),
        ("Move.FIRE", 1),  # an IntEnum member is its value
        ("True", {"invalid": "True"}),  # a bool is not an action, whatever its value
        ("6", {"invalid": "6"}),
        ("-1", {"invalid": "-1"}),
        ("1.0", {"invalid": "1.0"}),
        ("2**40", {"invalid": str(2**40)}),
    ],
)
def test_harness_replies_action_classified(runner: Any, returned: str, expected: Any) -> None:
    policy = runner(
        "import enum\n"
        "class Move(enum.IntEnum):\n"
        "    NOOP = 0\n"
        "    FIRE = 1\n"
        f"def act(obs):\n    return {returned}\n"
    )
    reply = _act(policy, OBS)
    if isinstance(expected, int):
        assert reply == expected
    else:
        assert isinstance(reply, dict) and reply["invalid"] == expected["invalid"]


def test_harness_replies_a_stream_of_actions_in_order(runner: Any) -> None:
    policy = runner("n = 0\ndef act(obs):\n    global n\n    n += 1\n    return n % 6\n")
    assert [_act(policy, OBS) for _ in range(20)] == [(i + 1) % 6 for i in range(20)]
