"""Containers the docker backend left behind: how they are labelled, found and removed.

Every container carries `evocade.sandbox=1` and its creator's host name, pid and process start
time. When a backend is built it removes those whose creator on this host is gone, and any
older than `STALE_CONTAINER_HOURS` whoever made them (a creator on another host sharing a
remote engine). A container whose removal failed (the engine went away) is retried by the next
backend built, sandbox created or backend closed in this process.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import docker
import docker.errors
import requests.exceptions

from sandbox.backends.cgroups import process_start

LABEL = "evocade.sandbox"
LABEL_HOST = "evocade.host"
LABEL_PID = "evocade.pid"
LABEL_PID_START = "evocade.pid-start"
STALE_CONTAINER_HOURS = 24.0  # longer than any episode's wall-clock budget
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)
# Containers this process made whose removal failed (the engine was unreachable): retried.
_unremoved: set[str] = set()
_unremoved_lock = threading.Lock()


def _creator_gone(labels: dict[str, str]) -> bool:
    """True when the container's creator ran on this host and no longer runs."""
    if labels.get(LABEL_HOST) != socket.gethostname():
        return False
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return True
    start = process_start(pid)
    return start is None or start != labels.get(LABEL_PID_START)


def reap_stale_containers(client: docker.DockerClient) -> list[str]:
    """Remove sandbox containers left by a crashed creator (the rule is in the module doc)."""
    removed = []
    now = time.time()
    for info in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
        labels = info.get("Labels") or {}
        too_old = now - float(info.get("Created", now)) > STALE_CONTAINER_HOURS * 3600
        if too_old or _creator_gone(labels):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.api.remove_container(info["Id"], force=True)
                removed.append(info["Id"])
    return removed


def removals_pending() -> bool:
    """Whether a container of this process still waits for its removal to be retried."""
    return bool(_unremoved)


def remove_container(client: docker.DockerClient, container_id: str) -> None:
    """Remove a container of this process now, or, the engine unreachable, remember it for
    `retry_removals`."""
    if not _removed(client, container_id):
        with _unremoved_lock:
            _unremoved.add(container_id)


def retry_removals(client: docker.DockerClient) -> list[str]:
    """Remove the containers earlier sandboxes of this process could not (module doc)."""
    with _unremoved_lock:
        pending = sorted(_unremoved)
    removed = []
    for container_id in pending:
        if _removed(client, container_id):  # else still unreachable: try again next time
            removed.append(container_id)
            with _unremoved_lock:
                _unremoved.discard(container_id)
    return removed


def _removed(client: docker.DockerClient, container_id: str) -> bool:
    """Remove the container: True once it is gone (already gone too), False when the engine
    could not be reached."""
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except ENGINE_ERRORS:
        return False
    return True
