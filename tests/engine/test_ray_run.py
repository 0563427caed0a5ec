"""`evocade run --executor ray` end to end: a real two-node Ray cluster on 127.0.0.1, the real
bwrap sandbox on each node, a real PostgreSQL database shared by two drivers at once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import Store
from tests.storage.conftest import postgres_admin, postgres_url  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.bwrap, pytest.mark.postgres]
SHORT = ["--episodes", "2", "--max-steps", "150", "--holdout-episodes", "2", "--sandbox", "bwrap"]


def _evocade(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("evocade")), *args]


def _nodes(store: Store, run_id: str) -> set[str]:
    return {
        str(episode.get("node"))
        for evaluation in store.run_evaluations(run_id)
        for episode in evaluation.episodes
    }


def test_run_on_the_cluster_with_a_second_driver_on_the_same_database(
    ray_address: str,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
    bwrap_backend: object,
) -> None:
    on_ray = _evocade("run", "--game", "Pong", "--iterations", "4", *SHORT, "--json")
    on_ray += ["--executor", "ray", "--ray-address", ray_address, "--db", postgres_url]
    local = _evocade("run", "--game", "Breakout", "--iterations", "3", *SHORT, "--json")
    local += ["--db", postgres_url]
    first = subprocess.Popen(on_ray, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(local, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # A reader while both write: `runs` lists whatever is committed, never fails.
    seen = 0
    while first.poll() is None or second.poll() is None:
        listing = subprocess.run(
            _evocade("runs", "--db", postgres_url, "--json"), capture_output=True, text=True
        )
        assert listing.returncode in (0, 2), listing.stderr  # 2: no database yet at the start
        if listing.returncode == 0:
            seen = max(seen, len(json.loads(listing.stdout)))
        time.sleep(0.5)
    out_ray, err_ray = first.communicate(timeout=900)
    out_local, err_local = second.communicate(timeout=900)
    assert first.returncode == 0, err_ray
    assert second.returncode == 0, err_local
    ray_run = json.loads(out_ray.strip().splitlines()[-1])
    local_run = json.loads(out_local.strip().splitlines()[-1])
    with Store.open(postgres_url) as store:
        runs = {run.run_id: run for run in store.runs()}
        assert runs[ray_run["run_id"]].status == "finished"
        assert runs[local_run["run_id"]].status == "finished"
        nodes = _nodes(store, ray_run["run_id"])
        assert _nodes(store, local_run["run_id"]) == {"None"}  # played here, not on a node
        keys = [
            (e.program_id, e.env_key, e.seeds_key) for e in store.run_evaluations(ray_run["run_id"])
        ]
    assert len(nodes) >= 2 and all(node.startswith("127.0.0.1/") for node in nodes)
    assert len(keys) == len(set(keys))  # every evaluation recorded once
    assert seen >= 1
