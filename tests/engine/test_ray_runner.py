"""The Ray executor on a real local cluster (scripts/ray-cluster.sh: a head and a worker node on
127.0.0.1) with the real bubblewrap sandbox on every node. No mocks: a node is lost by killing
its processes with SIGKILL.

The emulator is deterministic given the seed and the env setting (sticky actions included:
they draw from the reset seed), so an episode played on any node equals the local pool's,
trace and all; the tests compare them exactly rather than by timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.executors import RAY_MISSING, RayRunner, RayUnavailable, open_ray_runner
from engine.executors.ray_cluster import ClusterNode, cluster_nodes, cluster_report, connect
from sandbox.backends.base import Prepare
from sandbox.episodes import EpisodeRequest, RunnerClosed
from sandbox.evaluate import open_runner
from sandbox.results import EpisodeResult, Status
from sandbox.settings import EnvSettings, Limits
from tests.conftest import program
from tests.engine.ray_nodes import wait_until_listed_dead

ROOT = Path(__file__).resolve().parents[2]
ENV = EnvSettings(max_steps=200)  # default setting: sticky actions on
LIMITS = Limits()
WAIT_SECONDS = 600.0  # a loaded 2-core machine noticing a dead node, starting sandboxes
SLOW = "import time\ndef act(obs):\n    time.sleep(0.01)\n    return 0\n"


def _requests(seeds: list[int]) -> list[EpisodeRequest]:
    source = program("pong_tracker.py")
    return [EpisodeRequest(source, "Pong", seed, ENV, LIMITS) for seed in seeds]


def _comparable(episode: EpisodeResult) -> dict[str, Any]:
    """What must not depend on where the episode was played (timings and `node` aside)."""
    return episode.model_dump(
        exclude={
            "node",
            "wall_seconds",
            "policy_cpu_seconds",
            "harness_cpu_seconds",
            "policy_peak_memory_mb",
        }
    )


def _play_all(runner: Any, requests: list[EpisodeRequest]) -> list[EpisodeResult]:
    with ThreadPoolExecutor(max_workers=runner.slots) as threads:
        return list(threads.map(runner.run, requests))


@pytest.fixture(scope="module")
def ray_connection(ray_address: str, bwrap_backend: object) -> Iterator[Any]:
    """One connection for the module (each runner then leaves it open)."""
    ray, connected = connect(ray_address)
    yield ray
    if connected:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_episodes() -> dict[int, EpisodeResult]:
    """The local pool's episodes for seeds 0-5: what every node must reproduce."""
    with open_runner("bwrap", LIMITS) as pool:
        return {episode.seed: episode for episode in _play_all(pool, _requests(list(range(6))))}


@pytest.mark.ray
@pytest.mark.bwrap
def test_ray_runner_plays_like_the_local_pool_on_both_nodes(
    ray_connection: Any, ray_address: str, local_episodes: dict[int, EpisodeResult]
) -> None:
    prewarm = Prepare("Pong", ENV.frameskip, ENV.repeat_action_probability, seeds=(0, 1))
    with open_ray_runner(ray_address, "bwrap", LIMITS, prewarm=prewarm) as runner:
        assert runner.refused == []
        assert runner.name == "ray/bwrap"
        assert len(runner.nodes) >= 2 and runner.slots >= 2
        episodes = _play_all(runner, _requests(list(range(6))))
    assert [episode.seed for episode in episodes] == list(range(6))
    for episode in episodes:
        assert episode.status == Status.OK and episode.length == 200
        assert _comparable(episode) == _comparable(local_episodes[episode.seed])
        assert episode.node in runner.nodes
    assert len({episode.node for episode in episodes}) >= 2  # both nodes played
    # the seeds differ in outcome, so equal scores are not equal by accident
    assert len({episode.episode_return for episode in episodes}) > 1


@pytest.mark.ray
@pytest.mark.bwrap
def test_ray_runner_replays_elsewhere_the_episodes_of_a_lost_node(
    ray_connection: Any, ray_address: str, local_episodes: dict[int, EpisodeResult]
) -> None:
    before = {node.node_id for node in cluster_nodes(ray_connection) if node.alive}
    extra = subprocess.Popen(
        [str(ROOT / "scripts" / "ray-cluster.sh"), "join", ray_address, "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    extra_label = ""
    try:
        extra_label = _wait_for_new_node(ray_connection, before).label
        runner = open_ray_runner(ray_address, "bwrap", LIMITS)
        assert extra_label in runner.nodes
        killed = threading.Event()

        def lose_the_extra_node(label: str, request: EpisodeRequest) -> None:
            # The first episode sent to the extra node: it is lost there, whatever stage
            # it has reached (queued at the actor, starting or playing).
            if label == extra_label and not killed.is_set():
                killed.set()
                _kill_node(extra, runner, extra_label)

        runner.on_dispatch = lose_the_extra_node
        with runner:
            episodes = _play_all(runner, _requests(list(range(6))))
            assert killed.is_set()
            assert runner.stats.requeued >= 1
            assert [label for label, _ in runner.stats.lost] == [extra_label]
            assert extra_label not in runner.nodes
    finally:
        _kill_node(extra, None, "")
        if extra_label:
            wait_until_listed_dead(ray_connection, extra_label)
    assert [episode.seed for episode in episodes] == list(range(6))  # each exactly once
    for episode in episodes:
        assert episode.node != extra_label
        assert _comparable(episode) == _comparable(local_episodes[episode.seed])


def _wait_for_new_node(ray: Any, before: set[str]) -> ClusterNode:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        new = [n for n in cluster_nodes(ray) if n.alive and n.node_id not in before]
        if new:
            return new[0]
        time.sleep(0.5)
    raise AssertionError("the extra node never joined")


def _kill_node(extra: subprocess.Popen[bytes], runner: RayRunner | None, label: str) -> None:
    """SIGKILL to the node's session (its raylet and agents) and to its actor's process."""
    if runner is not None:
        pid = next(node.pid for node in runner._nodes if node.label == label)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
    if extra.poll() is None:
        os.killpg(extra.pid, signal.SIGKILL)
        extra.wait(WAIT_SECONDS)


@pytest.mark.ray
@pytest.mark.bwrap
def test_ray_runner_closed_cuts_episodes_short_and_refuses_more(
    ray_connection: Any, ray_address: str
) -> None:
    runner = open_ray_runner(ray_address, "bwrap", LIMITS)
    dispatched = threading.Event()
    runner.on_dispatch = lambda label, request: dispatched.set()
    outcome: list[BaseException | EpisodeResult] = []
    long_env = EnvSettings.deterministic(max_steps=27_000)  # 27,000 slow steps take minutes

    def play() -> None:
        try:
            outcome.append(runner.run(EpisodeRequest(SLOW, "Pong", 0, long_env, LIMITS, False)))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=play)
    thread.start()
    assert dispatched.wait(WAIT_SECONDS)
    runner.close()
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RunnerClosed)
    with pytest.raises(RunnerClosed):
        runner.run(_requests([0])[0])


@pytest.mark.ray
@pytest.mark.bwrap
def test_ray_cluster_report_names_every_node_and_its_sandbox(
    ray_connection: Any, ray_address: str
) -> None:
    report = cluster_report(ray_address, "bwrap")
    alive = [node for node in report if node["alive"]]
    assert len(alive) >= 2
    for node in alive:
        assert node["sandbox_works"] is True, node["reason"]
        assert node["ip"] == "127.0.0.1" and node["cores"] >= 1 and node["backend"] == "bwrap"


@pytest.mark.ray
@pytest.mark.bwrap
def test_ray_runner_refuses_when_no_node_can_start_the_sandbox(
    ray_connection: Any, ray_address: str
) -> None:
    # A pids limit of 4 cannot hold a sandbox's processes: every node's probe sandbox dies
    # starting, so every node refuses (and nothing is played anywhere, sandboxed or not).
    starved = Limits(pids=4)
    report = cluster_report(ray_address, "bwrap", starved)
    assert [node["sandbox_works"] for node in report if node["alive"]] == [False] * len(
        [node for node in report if node["alive"]]
    )
    assert all("sandbox did not start" in node["reason"] for node in report if node["alive"])
    with pytest.raises(RayUnavailable, match="no node of the Ray cluster can run bwrap"):
        open_ray_runner(ray_address, "bwrap", starved)


@pytest.mark.ray
@pytest.mark.bwrap
def test_ray_doctor_reports_the_cluster(
    ray_connection: Any, ray_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--ray-address", ray_address]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"cluster +{re.escape(ray_address)}: \d+ nodes alive", out)
    # `auto` on each node: docker where an engine answers (as in CI), else bwrap
    pattern = r"^  node 127\.0\.0\.1/\w+  1 cores  sandbox (bwrap|docker) works$"
    nodes = re.findall(pattern, out, re.M)
    assert len(nodes) >= 2
    report = json.loads(_json_doctor(capsys, ray_address))
    alive = [node for node in report["cluster"]["nodes"] if node["alive"]]
    assert len(alive) >= 2 and all(node["sandbox_works"] for node in alive)


def _json_doctor(capsys: pytest.CaptureFixture[str], address: str) -> str:
    main(["doctor", "--json", "--ray-address", address])
    return capsys.readouterr().out


def test_ray_doctor_says_in_one_line_when_nothing_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as unused:  # a port on which nothing listens
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
    code = main(["doctor", "--ray-address", address])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("cluster")]
    if find_spec("ray") is None:
        assert lines == [f"cluster        {address}: unusable: {RAY_MISSING}"]
    else:
        assert lines == [
            f"cluster        {address}: unusable: nothing answers at {address} "
            "(Connection refused): is the cluster up?"
        ]
    assert code == 1


def test_ray_missing_gives_the_install_line() -> None:
    """Without Ray importable, opening a runner says in one line how to get it (run in a fresh
    interpreter where `import ray` fails, as on an install without the extra)."""
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from engine.executors import open_ray_runner, cluster_report, RayUnavailable\n"
        "from sandbox.settings import Limits\n"
        "for call in (lambda: open_ray_runner(None, 'bwrap', Limits()), "
        "lambda: cluster_report(None)):\n"
        "    try:\n"
        "        call()\n"
        "    except RayUnavailable as error:\n"
        "        print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [RAY_MISSING, RAY_MISSING]
    assert RAY_MISSING == "--executor ray needs: pip install -e '.[ray]'"


@pytest.mark.ray
@pytest.mark.bwrap
def test_ray_runners_share_the_cluster_and_one_waits_when_every_core_is_held(
    ray_connection: Any, ray_address: str, local_episodes: dict[int, EpisodeResult]
) -> None:
    """A second runner takes what the first left free (`slots` caps the first); with every
    core held it says so and waits, with no deadline, until the first releases them."""
    total = sum(node.cores for node in cluster_nodes(ray_connection) if node.alive)
    first = open_ray_runner(ray_address, "bwrap", LIMITS, slots=1)
    said: list[str] = []
    try:
        assert first.slots == 1 and len(first.nodes) == 1 and first.free_at_start == total
        _wait_for_free(ray_connection, total - 1)  # Ray's view of the cores once it has caught up
        with open_ray_runner(ray_address, "bwrap", LIMITS, say=said.append) as second:
            assert second.slots == total - 1 and second.free_at_start == total - 1
            assert set(second.nodes).isdisjoint(first.nodes)
            assert said == [
                f"ray: 1 of the cluster's {total} cores are held by other jobs; "
                f"taking {total - 1} of the {total - 1} free"
            ]
            _wait_for_free(ray_connection, 0)
            said.clear()
            waiting: list[RayRunner | BaseException] = []

            def third() -> None:
                try:
                    waiting.append(open_ray_runner(ray_address, "bwrap", LIMITS, say=said.append))
                except BaseException as error:
                    waiting.append(error)

            thread = threading.Thread(target=third)
            thread.start()
            deadline = time.monotonic() + WAIT_SECONDS
            while not said and time.monotonic() < deadline:
                time.sleep(0.2)
            assert said == [
                f"ray: {total} of the cluster's {total} cores are held by other jobs, all of "
                "them: waiting for one to be released"
            ]
            assert waiting == []  # still waiting, whatever the time: nothing frees a core
        first.close()  # now every core is free again: the waiting runner gets its own
        thread.join(WAIT_SECONDS)
        assert len(waiting) == 1 and isinstance(waiting[0], RayRunner), waiting
        with waiting[0] as late:
            assert late.slots == 1 and late.refused == []  # the first core released won
            episode = late.run(_requests([0])[0])
        assert _comparable(episode) == _comparable(local_episodes[0])
    finally:
        first.close()


def _wait_for_free(ray: Any, cores: int) -> None:
    """Until Ray's resource view (what a new runner reads) shows `cores` free cores."""
    from engine.executors.ray_cluster import free_cores

    deadline = time.monotonic() + WAIT_SECONDS
    while sum(free_cores(ray).values()) != cores:
        assert time.monotonic() < deadline, f"Ray never showed {cores} free cores"
        time.sleep(0.2)
