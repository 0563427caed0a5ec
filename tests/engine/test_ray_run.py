"""`evocade run --executor ray` end to end: a real two-node Ray cluster on 127.0.0.1, the real
bwrap sandbox on each node, a real PostgreSQL database shared by several drivers at once and
read meanwhile (`runs`, `history`, `lineage`, the web view). Nodes that refuse or are lost are
extra nodes each test starts itself (`scripts/ray-cluster.sh join`), so the shared cluster
lives on; a node is lost by SIGKILL to its session once the database shows it played.

The tests assume nothing else holds the test cluster's cores meanwhile (in CI the suite runs
alone on it): the second driver's share is what the first one left free.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.executors.ray_cluster import ClusterNode, cluster_nodes, connect
from engine.web.app import WebSettings, create_app
from storage import Store
from tests.engine.ray_nodes import wait_until_listed_dead
from tests.storage.conftest import postgres_admin, postgres_url  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.ray, pytest.mark.bwrap, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--episodes", "2", "--max-steps", "150", "--holdout-episodes", "2", "--sandbox", "bwrap"]
WAIT_SECONDS = 900.0  # a loaded 2-core machine: drivers starting, nodes noticed dead
FOREVER = "100000"  # iterations of a driver that ends only when the test stops it


def _evocade(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("evocade")), *args]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _evocade(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _nodes(store: Store, run_id: str) -> set[str]:
    return {
        str(episode.get("node"))
        for evaluation in store.run_evaluations(run_id)
        for episode in evaluation.episodes
    }


def _events(store: Store, run_id: str, kind: str) -> list[Any]:
    return [event for event in store.events(run_id) if event.kind == kind]


def _wait(what: str, done: Callable[[], bool], between: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        assert time.monotonic() < deadline, f"waited {WAIT_SECONDS:.0f} s for {what}"
        between()
        time.sleep(0.5)


def _run_of(store: Store, game: str, before: set[str]) -> str | None:
    new = [run.run_id for run in store.runs() if run.run_id not in before and run.game == game]
    return new[0] if new else None


def _unique_evaluations(store: Store, run_id: str) -> None:
    """Every evaluation once, each with every one of its seeds once and complete."""
    evaluations = store.run_evaluations(run_id)
    keys = [(e.program_id, e.env_key, e.seeds_key) for e in evaluations]
    assert len(keys) == len(set(keys))
    for evaluation in evaluations:
        seeds = [episode["seed"] for episode in evaluation.episodes]
        assert len(seeds) == len(set(seeds)) and seeds == sorted(seeds), seeds
        for episode in evaluation.episodes:
            assert episode["status"] == "ok" and episode["length"] >= 1, episode


class Readers:
    """`runs`, `history`, `lineage` and the web view over the database drivers write: each
    call must answer (exit 0, HTTP 200) and show the run, however far it has got."""

    def __init__(self, url: str, cache: Path) -> None:
        self.url = url
        self.store = Store.open_read_only(url)
        app = create_app(self.store, WebSettings(cache_dir=cache))
        self.web = TestClient(app, base_url="http://127.0.0.1")  # a loopback Host, as served
        self.rounds = 0

    def read(self, run_id: str | None) -> None:
        listing = self._cli("runs", "--json")
        if run_id is None:
            return
        assert run_id in {run["run_id"] for run in json.loads(listing)}
        self._cli("history", run_id, "--json")
        programs = self.store.history(run_id)  # none yet in the run's first moment
        if programs:
            seed = programs[0].program_id
            assert seed in self._cli("lineage", seed, "--json")
        for path in ("/", f"/run/{run_id}"):
            page = self.web.get(path)
            assert page.status_code == 200, (path, page.status_code)
            assert run_id[:8] in page.text
        self.rounds += 1

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            _evocade(*args, "--db", self.url), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (args, done.returncode, done.stderr)  # never 2, never 1
        return done.stdout

    def close(self) -> None:
        self.web.close()
        self.store.close()


def test_ray_drivers_share_the_cluster_and_the_database_while_it_is_read(
    ray_address: str,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
    bwrap_backend: object,
    tmp_path: Path,
) -> None:
    Store.open(postgres_url).close()  # the schema, so that readers answer from the start
    readers = Readers(postgres_url, tmp_path / "replays")
    on_ray = ["--executor", "ray", "--ray-address", ray_address, "--db", postgres_url]
    first = _start("run", "-g", "Pong", "--iterations", FOREVER, "--ray-slots", "1", *SHORT,
                   "--json", *on_ray)  # fmt: skip
    local = _start("run", "-g", "Breakout", "--iterations", "3", *SHORT, "--json",
                   "--db", postgres_url)  # fmt: skip
    second: subprocess.Popen[str] | None = None
    try:
        with Store.open(postgres_url) as store:
            first_id: str | None = None

            def first_holds_its_core() -> bool:
                nonlocal first_id
                first_id = first_id or _run_of(store, "Pong", set())
                assert first.poll() is None, first.communicate()[1]
                return first_id is not None and bool(_events(store, first_id, "ray_cluster"))

            _wait("the first driver's cores", first_holds_its_core, lambda: readers.read(first_id))
            assert first_id is not None
            # A second driver on the cluster while the first holds one core: it takes the
            # other, and both play at once.
            second = _start("run", "-g", "Breakout", "--iterations", "3", "--ray-slots", "1",
                            *SHORT, "--json", *on_ray)  # fmt: skip
            _wait(
                "the second driver and the local one",
                lambda: second.poll() is not None and local.poll() is not None,
                lambda: readers.read(first_id),
            )
            out_second, err_second = second.communicate()
            out_local, err_local = local.communicate()
            assert second.returncode == 0, err_second
            assert local.returncode == 0, err_local
            assert first.poll() is None, first.communicate()[1]  # it runs until stopped
            second_id = json.loads(out_second.strip().splitlines()[-1])["run_id"]
            local_id = json.loads(out_local.strip().splitlines()[-1])["run_id"]
            share = _events(store, second_id, "ray_cluster")[0].data
            assert share["cores"] == 1 and share["free"] == share["total"] - 1, share
            assert "ray: 1 of the cluster's" in err_second  # it said what it found held
            readers.read(first_id)

            # Stopped, then resumed on the cluster under another address (a restarted
            # cluster's is new): the address is where the run plays, not what it computes.
            first.send_signal(signal.SIGINT)
            _, err_first = first.communicate(timeout=WAIT_SECONDS)
            assert first.returncode == 130, err_first
            first_nodes, second_nodes = _nodes(store, first_id), _nodes(store, second_id)
            decided = len(_events(store, first_id, "iteration"))
            port = ray_address.rpartition(":")[2]
            resumed = subprocess.run(
                _evocade("run", "--resume", first_id, "--iterations", str(decided + 1), "--json",
                         "--ray-address", f"localhost:{port}", "--db", postgres_url),
                capture_output=True, text=True, timeout=WAIT_SECONDS,
            )  # fmt: skip
            assert resumed.returncode == 0, resumed.stderr
            assert "resuming run" in resumed.stderr

            runs = {run.run_id: run for run in store.runs()}
            for run_id in (first_id, second_id, local_id):
                assert runs[run_id].status == "finished", (run_id, runs[run_id].status)
                _unique_evaluations(store, run_id)
            assert len(_events(store, first_id, "ray_cluster")) == 2  # started, resumed
            assert _nodes(store, local_id) == {"None"}  # played here, not on a node
            assert len(first_nodes) == 1 and len(second_nodes) == 1  # one core each
            assert first_nodes != second_nodes  # the two cores were the two nodes'
            assert all(node.startswith("127.0.0.1/") for node in first_nodes | second_nodes)
    finally:
        for driver in (first, local, second):
            if driver is not None and driver.poll() is None:
                driver.kill()
                driver.communicate()
        readers.close()
    assert readers.rounds >= 2


@pytest.fixture
def ray_connection(ray_address: str, bwrap_backend: object) -> Iterator[Any]:
    ray, connected = connect(ray_address)
    yield ray
    if connected:
        ray.shutdown()


class ExtraNode:
    """One more worker node in a session of its own (`ray-cluster.sh join`), killed by the
    test; `env` changes what its sandboxes find (a bwrap that cannot start one)."""

    def __init__(self, ray: Any, address: str, env: dict[str, str] | None = None) -> None:
        before = {node.node_id for node in cluster_nodes(ray)}
        self.process = subprocess.Popen(
            [str(ROOT / "scripts" / "ray-cluster.sh"), "join", address, "1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.ray = ray
        found: list[ClusterNode] = []

        def joined() -> bool:
            assert self.process.poll() is None, "the extra node ended"
            found[:] = [n for n in cluster_nodes(ray) if n.alive and n.node_id not in before]
            return bool(found)

        _wait("the extra node to join", joined)
        self.label = found[0].label

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(WAIT_SECONDS)
            wait_until_listed_dead(self.ray, self.label)


def test_ray_run_goes_on_when_a_node_refuses_and_another_is_lost(
    ray_connection: Any,
    ray_address: str,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "bwrap").write_text("#!/bin/sh\necho 'no \x1b[31mbwrap\x1b[0m here' >&2\nexit 1\n")
    (broken / "bwrap").chmod(0o755)
    extra: list[ExtraNode] = []
    try:
        path = f"{broken}{os.pathsep}{os.environ['PATH']}"
        extra.append(ExtraNode(ray_connection, ray_address, {"PATH": path}))
        extra.append(ExtraNode(ray_connection, ray_address))
        refusing, lost = extra
        err = _run_losing_a_node(postgres_url, ray_address, refusing, lost)
    finally:
        for node in extra:
            node.kill()
    lines = err.splitlines()
    said_refused = [
        line for line in lines if line.startswith(f"ray: node {refusing.label} refused")
    ]
    said_lost = [line for line in lines if line.startswith(f"ray: node {lost.label} lost")]
    assert len(said_refused) == 1 and len(said_lost) == 1, err
    assert "\x1b" not in err  # whatever a node says is escaped


def _run_losing_a_node(url: str, address: str, refusing: ExtraNode, lost: ExtraNode) -> str:
    """`evocade run` on the cluster with both extra nodes, `lost` killed once it has played
    an episode the database shows; its stderr, after the checks of what it recorded."""
    Store.open(url).close()
    # The lost node's cores wait in the runner's FIFO queue of free cores, so the dispatches
    # after the kill reach it within one round of the cluster's cores: with most of the 24
    # iterations still to go, the loss is always noticed before the run ends.
    driver = _start("run", "-g", "Pong", "--iterations", "24", *SHORT, "--json",
                    "--executor", "ray", "--ray-address", address, "--db", url)  # fmt: skip
    try:
        with Store.open(url) as store:
            run_id: str | None = None

            def played_on_the_node_to_lose() -> bool:
                nonlocal run_id
                assert driver.poll() is None, driver.communicate()[1]
                run_id = run_id or _run_of(store, "Pong", set())
                return run_id is not None and lost.label in _nodes(store, run_id)

            _wait("an episode played on the extra node", played_on_the_node_to_lose)
            assert run_id is not None
            decided_at_kill = len(_events(store, run_id, "iteration"))
            lost.kill()
            out, err = driver.communicate(timeout=WAIT_SECONDS)
            assert driver.returncode == 0, err
            assert json.loads(out.strip().splitlines()[-1])["run_id"] == run_id
            assert store.get_run(run_id).status == "finished"
            assert decided_at_kill < 16  # the node was lost mid-run, not after it
            _unique_evaluations(store, run_id)
            refused = _events(store, run_id, "ray_node_refused")
            # An extra node an earlier test killed may still be listed alive by Ray (until its
            # health checks fail) and refuse too; the refusing node must be there, once.
            reasons = {event.data["node"]: event.data["reason"] for event in refused}
            assert [event.data["node"] for event in refused].count(refusing.label) == 1
            assert "bwrap failed to start: no \x1b[31mbwrap" in reasons[refusing.label]  # as said
            gone = _events(store, run_id, "ray_node_lost")
            assert [event.data["node"] for event in gone] == [lost.label]
            assert refusing.label not in _nodes(store, run_id)
            return err
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
