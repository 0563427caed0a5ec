"""A full disk: one-line StorageError, nothing committed lost, and once space is back the same
open store can still mark the run stopped or failed (#12). SQLite only: the disk is a small
tmpfs mounted for the test (root and mount privileges needed, else skipped), unmounted after."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import string
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import LlmExchange, StorageError, Store
from storage.models import RunStatus
from tests.storage.factories import PONG_ENV, policy, result


@pytest.fixture
def small_disk() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="evocade-full-", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        directory.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
        with contextlib.suppress(OSError):
            directory.rmdir()


def _fill(directory: Path) -> Path:
    """Write until the file system says ENOSPC; returns the file to delete to free space."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)
    return filler


def _integrity(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


@pytest.mark.parametrize("final_status", ["stopped", "failed"])
def test_disk_full_then_space_back_the_run_can_be_marked(
    small_disk: Path, final_status: RunStatus
) -> None:
    db = small_disk / "run.db"
    rng = random.Random(0)
    committed: list[str] = []
    with Store.open(db) as store:
        run = store.create_run("Pong", PONG_ENV)
        seed = store.add_program(run.id, policy(0), origin="seed")
        store.record_evaluation(seed.id, result([1.0]))
        filler = _fill(small_disk)
        with pytest.raises(StorageError) as full:
            for _ in range(200):  # 200 x 50 KB of incompressible prompt: far past the space left
                prompt = "".join(rng.choices(string.ascii_letters, k=50_000))
                committed.append(
                    store.record_llm_call(run.id, LlmExchange(prompt=prompt, model="m")).id
                )
        message = str(full.value)
        assert "\n" not in message and "full" in message.lower(), message

        filler.unlink()  # space is back; the same store goes on
        store.set_status(run.id, final_status, "the disk under the database filled up")
        assert store.get_run(run.id).status == final_status
        checkpoint = store.checkpoint(truncate=True)
        assert checkpoint is not None and checkpoint.complete

    assert _integrity(db) == "ok"
    with Store.open(db, create=False) as reopened:
        assert reopened.get_run(run.id).status == final_status
        stored = {call.id for call in reopened.llm_calls(run.id)}
        assert set(committed) <= stored  # every call whose commit returned is there
        assert [e.kind for e in reopened.events(run.id)][-1] == f"run_{final_status}"
        assert reopened.history(run.id)[0].mean_return == 1.0


def test_disk_full_marking_the_run_fails_cleanly_while_still_full(small_disk: Path) -> None:
    """With no space at all, even the status change may fail: a one-line error, no damage."""
    db = small_disk / "run.db"
    with Store.open(db) as store:
        run = store.create_run("Pong", PONG_ENV)
        store.checkpoint(truncate=True)  # an empty WAL: the next write must grow a file
        filler = _fill(small_disk)
        try:
            store.set_status(run.id, "failed", "disk full")
        except StorageError as error:
            assert "\n" not in str(error) and "full" in str(error).lower()
            expected = "running"
        else:
            expected = "failed"  # the write fitted in pages SQLite already had
        filler.unlink()
        assert store.get_run(run.id).status == expected
    assert _integrity(db) == "ok"


def test_disk_full_a_grown_wal_still_takes_the_status_change(small_disk: Path) -> None:
    """PASSIVE checkpoints (the loop's) keep the WAL file's space: after one, the few pages of a
    status change are written over old WAL frames, so marking the run works on a full disk."""
    db = small_disk / "run.db"
    rng = random.Random(1)
    with Store.open(db) as store:
        run = store.create_run("Pong", PONG_ENV)
        for _ in range(4):  # grow the WAL by ~200 KB, then checkpoint it without truncating
            prompt = "".join(rng.choices(string.ascii_letters, k=50_000))
            store.record_llm_call(run.id, LlmExchange(prompt=prompt, model="m"))
        checkpoint = store.checkpoint()
        assert checkpoint is not None and checkpoint.complete
        filler = _fill(small_disk)
        try:
            store.set_status(run.id, "failed", "disk full")
            assert store.get_run(run.id).status == "failed"
        finally:
            filler.unlink()
    assert _integrity(db) == "ok"
    with Store.open(db, create=False) as reopened:
        assert reopened.get_run(run.id).status == "failed"
