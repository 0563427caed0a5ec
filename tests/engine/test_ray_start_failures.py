"""A Ray run that cannot start creates nothing: without Ray, or with nothing at the address,
`evocade run --executor ray` is one `error:` line and exit 2 (bad input, README's exit codes),
and the database holds no run, failed or otherwise. Needs no cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from engine.executors import RAY_MISSING
from storage import Store

ROOT = Path(__file__).resolve().parents[2]
RUN = ["run", "--game", "Pong", "--iterations", "2", "--episodes", "1", "--executor", "ray"]


def _evocade(argv: list[str], *, without_ray: bool) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh interpreter, where `import ray` fails when `without_ray`."""
    code = (
        "import sys\n"
        + ("sys.modules['ray'] = None\n" if without_ray else "")
        + "from engine.cli import main\n"
        + f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def _runs(db: Path) -> list[object]:
    with Store.open(db) as store:
        return list(store.runs())


def _dead_address() -> str:
    with socket.socket() as unused:  # a port on which nothing listens
        unused.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{unused.getsockname()[1]}"


def test_ray_run_without_ray_creates_no_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    done = _evocade([*RUN, "--db", str(db)], without_ray=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: {RAY_MISSING}"]
    assert _runs(db) == []


def test_ray_run_on_a_dead_address_creates_no_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    address = _dead_address()
    done = _evocade([*RUN, "--ray-address", address, "--db", str(db)], without_ray=False)
    assert done.returncode == 2, done.stderr
    if find_spec("ray") is None:
        assert done.stderr.splitlines() == [f"error: {RAY_MISSING}"]
    else:
        assert done.stderr.splitlines() == [
            f"error: nothing answers at {address} (Connection refused): is the cluster up?"
        ]
    assert _runs(db) == []


def test_ray_run_resume_may_move_the_run_but_not_change_it(tmp_path: Path) -> None:
    """--ray-address and --ray-slots say where a run plays; other settings stay refused."""
    db = tmp_path / "runs.db"
    with Store.open(db) as store:
        from engine.config import RunConfig

        config = RunConfig(game="Pong", executor="ray", ray_address=_dead_address())
        run = store.create_run("Pong", config.full_env().model_dump(), config.to_json())
        store.set_status(run.id, "stopped", "SIGINT")
    moved = _dead_address()
    done = _evocade(
        [
            "run",
            "--resume",
            run.id[:8],
            "--ray-address",
            moved,
            "--ray-slots",
            "1",
            "--db",
            str(db),
        ],
        without_ray=False,
    )
    # Accepted as an option; the run then tries the new address (nothing answers there).
    assert done.returncode == 2, done.stderr
    if find_spec("ray") is not None:
        assert done.stderr.splitlines() == [
            f"error: nothing answers at {moved} (Connection refused): is the cluster up?"
        ]
    refused = _evocade(["run", "--resume", run.id[:8], "--episodes", "5", "--db", str(db)],
                       without_ray=False)  # fmt: skip
    assert refused.returncode == 2
    assert "drop --episodes" in refused.stderr
    with Store.open(db) as store:
        assert store.get_run(run.id).status == "stopped"  # a failed start changed nothing
