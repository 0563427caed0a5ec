"""`evocade runs / show / lineage / diff / best / revert / history` through the real entry point.

Real SQLite files; bad input must give one line on stderr, exit 2, and leave the database file
byte-for-byte as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.cli import main
from engine.cli_storage import COMMANDS
from storage import Store
from tests.storage.factories import PONG_ENV, policy, rejected_result, result

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sample:
    db: Path
    run: str
    other_run: str
    seed: str
    good: str
    bad: str
    broken: str
    foreign: str  # a program of other_run


@pytest.fixture
def sample(tmp_path: Path) -> Sample:
    """seed (-21) ─┬─ good (+3) ── bad (-15)
    └─ broken (rejected)        plus another run with one program."""
    db = tmp_path / "evocade.db"
    with Store.open(db) as store:
        run = store.create_run("Pong", PONG_ENV, {"iterations": 3})
        seed = store.add_program(run.id, policy(0), origin="seed")
        store.record_evaluation(seed.id, result([-21.0, -21.0]))
        good = store.add_program(run.id, policy(1), parent_id=seed.id)
        store.record_evaluation(good.id, result([3.0, 3.0]))
        bad = store.add_program(run.id, policy(2), parent_id=good.id)
        store.record_evaluation(bad.id, result([-15.0, -15.0]))
        broken = store.add_program(run.id, "import os\n", parent_id=seed.id)
        store.record_evaluation(broken.id, rejected_result(), seeds=[0, 1])
        store.set_head(run.id, bad.id)
        other = store.create_run("Breakout", {})
        foreign = store.add_program(other.id, policy(5), origin="seed")
    return Sample(db, run.id, other.id, seed.id, good.id, bad.id, broken.id, foreign.id)


def _ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_storage_runs_lists_runs(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(capsys, "runs", "--db", str(sample.db))
    assert sample.run[:8] in out and sample.other_run[:8] in out and "+3.00" in out
    listed = json.loads(_ok(capsys, "runs", "--db", str(sample.db), "--json"))
    assert [(r["run_id"], r["programs"], r["evaluations"]) for r in listed] == [
        (sample.run, 4, 4),
        (sample.other_run, 1, 0),
    ]
    assert listed[0]["best_mean_return"] == 3.0 and listed[0]["head_program_id"] == sample.bad


def test_cli_storage_show_prints_source_metadata_and_evaluations(
    sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "show", sample.good[:8], "--db", str(sample.db))
    assert sample.good in out and policy(1).strip() in out
    assert "generation 1" in out and sample.seed[:8] in out and "+3.00" in out
    broken = _ok(capsys, "show", sample.broken[:8], "--db", str(sample.db))
    assert "rejected" in broken and "import os is not allowed" in broken
    data = json.loads(_ok(capsys, "show", sample.good, "--db", str(sample.db), "--json"))
    assert data["id"] == sample.good and data["evaluations"][0]["mean_return"] == 3.0


def test_cli_storage_lineage_shows_chain_and_tree(
    sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "lineage", sample.good[:8], "--db", str(sample.db))
    lines = out.splitlines()
    assert "1 ancestors, 1 descendants" in lines[0]
    assert sample.seed[:8] in lines[1] and "-21.00 ok" in lines[1]
    assert lines[2].startswith("*") and sample.good[:8] in lines[2]
    assert sample.bad[:8] in lines[3]
    root = _ok(capsys, "lineage", sample.seed[:8], "--db", str(sample.db))
    assert "├─" in root and "└─" in root and "rejected" in root
    data = json.loads(_ok(capsys, "lineage", sample.bad, "--db", str(sample.db), "--json"))
    assert [node["program_id"] for node in data["ancestors"]] == [sample.good, sample.seed]
    assert data["program"]["mean_return"] == -15.0 and data["descendants"] == []


def test_cli_storage_diff_prints_unified_diff(
    sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "diff", sample.seed[:8], sample.good[:8], "--db", str(sample.db))
    assert out.startswith(f"--- a/{sample.seed[:8]}\n+++ b/{sample.good[:8]}\n")
    assert "-    return 0\n+    # variant 1\n+    return 1\n" in out


def test_cli_storage_best_exports_standalone_policy(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "best_policy.py"
    out = _ok(capsys, "best", sample.run[:6], "--db", str(sample.db), "--export", str(target))
    assert f"best program {sample.good[:8]}" in out and "+3.00" in out
    namespace: dict[str, object] = {}
    exec(compile(target.read_text(), str(target), "exec"), namespace)
    assert namespace["act"]({}) == 1  # type: ignore[operator]
    assert sample.good in target.read_text().splitlines()[0]


def test_cli_storage_best_refuses_to_export_over_database(
    sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sample.db.read_bytes()
    message = _one_line_error(
        capsys, "best", sample.run, "--db", str(sample.db), "--export", str(sample.db)
    )
    assert "database itself" in message
    assert sample.db.read_bytes() == before


def test_cli_storage_revert_moves_head_and_next_iteration_builds_on_it(
    sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "revert", sample.run[:8], "--to", sample.good[:8], "--db", str(sample.db))
    assert f"head {sample.bad[:8]} -> {sample.good[:8]}" in out
    with Store.open(sample.db, create=False) as store:
        run = store.get_run(sample.run)
        assert run.head_program_id == sample.good
        assert store.events(sample.run)[-1].data == {"from": sample.bad, "to": sample.good}
        child = store.add_program(run.id, policy(7), parent_id=run.head_program_id)
        assert child.parent_id == sample.good
    rows = json.loads(_ok(capsys, "history", sample.run, "--db", str(sample.db), "--json"))
    assert [row["kind"] for row in rows].count("program") == 5  # nothing deleted
    reverts = [row for row in rows if row["kind"] == "revert"]
    assert [(r["from_program_id"], r["program_id"]) for r in reverts] == [(sample.bad, sample.good)]


def test_cli_storage_history_lists_programs_in_order(
    sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, "history", sample.run[:8], "--db", str(sample.db))
    body = out.splitlines()[1:]
    assert [line.split()[1] for line in body] == [
        sample.seed[:8],
        sample.good[:8],
        sample.bad[:8],
        sample.broken[:8],
    ]
    assert "rejected" in body[3] and body[2].split()[-1] == "+3.00"
    rows = json.loads(_ok(capsys, "history", sample.run, "--db", str(sample.db), "--json"))
    assert [row["best_so_far"] for row in rows] == [-21.0, 3.0, 3.0, 3.0]


def test_cli_storage_db_from_environment_and_default(
    sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("EVOCADE_DB", str(sample.db))
    assert sample.run[:8] in _ok(capsys, "runs")
    monkeypatch.delenv("EVOCADE_DB")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert "no database at" in _one_line_error(capsys, "runs")
    assert list(elsewhere.iterdir()) == []  # a read command never creates a database
    shutil.copy(sample.db, elsewhere / "evocade.db")
    assert sample.run[:8] in _ok(capsys, "runs")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_storage_every_command_has_help_with_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok(capsys, command, "--help")
    assert "Example: evocade " + command in out
    assert "--db" in out


def _bad_input_cases() -> list[tuple[str, list[str], str]]:
    return [
        ("unknown program", ["show", "{missing}"], "no program matches '{missing}'"),
        ("unknown program lineage", ["lineage", "{missing}"], "no program matches"),
        ("unknown program diff", ["diff", "{seed}", "{missing}"], "no program matches"),
        ("not hex", ["show", "zz!"], "no program matches 'zz!'"),
        ("ambiguous", ["show", "{ambiguous}"], "ambiguous program id '{ambiguous}': matches"),
        ("run of other db", ["history", "{stranger}"], "no run matches '{stranger}'"),
        ("run of other db best", ["best", "{stranger}"], "no run matches"),
        ("run of other db revert", ["revert", "{stranger}", "--to", "{seed}"], "no run matches"),
        ("program of other run", ["revert", "{run}", "--to", "{foreign}"], "belongs to run"),
        ("nothing evaluated", ["best", "{other_run}"], "has no evaluated program yet"),
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [case[1:] for case in _bad_input_cases()],
    ids=[case[0] for case in _bad_input_cases()],
)
def test_cli_storage_bad_input_is_one_line_and_leaves_db_untouched(
    sample: Sample,
    tmp_path: Path,
    args: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Store.open(sample.db) as store:  # add programs until two share a first character
        numbers = iter(range(100, 200))
        while True:
            ids = [row.program_id for row in store.history(sample.run)]
            firsts = [program_id[0] for program_id in ids]
            shared = [char for char in firsts if firsts.count(char) > 1]
            if shared:
                break
            store.add_program(sample.run, policy(next(numbers)), origin="manual")
    with Store.open(tmp_path / "stranger.db") as stranger_store:
        stranger = stranger_store.create_run("Pong", PONG_ENV).id
    taken = {program_id[:2] for program_id in ids} | {sample.foreign[:2], sample.seed[:2]}
    missing = next(
        f"{a}{b}" for a in "0123456789abcdef" for b in "0123456789abcdef" if f"{a}{b}" not in taken
    )
    values = {
        "missing": missing,
        "ambiguous": shared[0],
        "stranger": stranger[:8],
        "seed": sample.seed[:8],
        "foreign": sample.foreign[:8],
        "run": sample.run[:8],
        "other_run": sample.other_run[:8],
    }
    before = sample.db.read_bytes()
    message = _one_line_error(
        capsys, *[arg.format(**values) for arg in args], "--db", str(sample.db)
    )
    assert expected.format(**values) in message
    assert sample.db.read_bytes() == before


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    "content",
    [os.urandom(16384), b"SQLite format 3\x00" + os.urandom(8192)],
    ids=["random", "header"],
)
def test_cli_storage_corrupt_database_is_refused_untouched(
    tmp_path: Path, command: str, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "corrupt.db"
    db.write_bytes(content)
    args = {
        "runs": ["runs"],
        "show": ["show", "abcd"],
        "lineage": ["lineage", "abcd"],
        "diff": ["diff", "abcd", "ef01"],
        "best": ["best", "abcd", "--export", str(tmp_path / "out.py")],
        "revert": ["revert", "abcd", "--to", "ef01"],
        "history": ["history", "abcd"],
    }[command]
    message = _one_line_error(capsys, *args, "--db", str(db))
    assert "corrupt.db" in message
    assert db.read_bytes() == content
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corrupt.db"]


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("evocade")
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]


def test_cli_storage_console_script_reports_corrupt_database(tmp_path: Path) -> None:
    db = tmp_path / "junk.db"
    db.write_bytes(b"\x00\xff" * 5000)
    done = subprocess.run(
        [*_console_script(), "history", "abc", "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "not an evocade database" in done.stderr
    assert db.read_bytes() == b"\x00\xff" * 5000


def test_cli_storage_console_script_lists_runs(sample: Sample) -> None:
    done = subprocess.run(
        [*_console_script(), "runs", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "EVOCADE_DB": str(sample.db)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [run["run_id"] for run in json.loads(done.stdout)] == [sample.run, sample.other_run]
