"""Test support for extra Ray nodes that a test starts and kills."""

from __future__ import annotations

import time
from typing import Any

from engine.executors.ray_cluster import cluster_nodes

NOTICED_SECONDS = 900.0  # Ray marks a killed node dead only after its health checks fail


def wait_until_listed_dead(ray: Any, label: str) -> None:
    """Block until Ray no longer lists the node `label` alive. A killed node stays listed
    alive until its health checks fail; a test that went on at once would leave the next one
    a node that refuses every task (and that test's verdict would depend on the machine's
    speed)."""
    deadline = time.monotonic() + NOTICED_SECONDS
    while any(node.alive and node.label == label for node in cluster_nodes(ray)):
        assert time.monotonic() < deadline, f"Ray still lists {label} alive"
        time.sleep(0.5)
