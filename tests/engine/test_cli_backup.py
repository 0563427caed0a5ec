"""`evocade backup DB OUT` through the real entry point, on real SQLite files (#12)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.cli import main
from storage import LlmExchange, Store
from tests.storage.factories import PONG_ENV, policy, result


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "evocade.db"
    with Store.open(path) as store:
        run = store.create_run("Pong", PONG_ENV)
        program = store.add_program(run.id, policy(1), origin="seed")
        store.record_evaluation(program.id, result([2.0]))
        store.record_llm_call(run.id, LlmExchange(prompt="p", model="m", response="r"))
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_cli_backup_writes_a_copy_that_opens(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = db.read_bytes()
    out = tmp_path / "copy.db"
    assert main(["backup", str(db), str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"backed up {db}") and str(out) in printed
    assert db.read_bytes() == before  # nothing written to DB
    with Store.open(out, create=False) as copy:
        (summary,) = copy.runs()
        assert summary.best_mean_return == 2.0
        assert copy.llm_calls(summary.run_id)[0].prompt == "p"
    connection = sqlite3.connect(out)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()


def test_cli_backup_refuses_to_overwrite_unless_forced(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "copy.db"
    out.write_text("keep me")
    assert main(["backup", str(db), str(out)]) == 2
    assert "refusing to overwrite" in _error_line(capsys)
    assert out.read_text() == "keep me"
    assert main(["backup", "--force", str(db), str(out)]) == 0
    assert out.read_bytes().startswith(b"SQLite format 3\x00")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.db", "no database at"),
        ("notes.txt", "not an evocade database"),
    ],
)
def test_cli_backup_bad_source_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    out = tmp_path / "copy.db"
    assert main(["backup", str(tmp_path / source), str(out)]) == 2
    assert message in _error_line(capsys)
    assert not out.exists()
    assert (tmp_path / "notes.txt").read_text() == "hello"


def test_cli_backup_postgres_points_at_pg_dump_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+psycopg://evocade:s3cret@db.example:5432/runs"
    assert main(["backup", url, str(tmp_path / "runs.dump")]) == 2
    line = _error_line(capsys)
    assert "pg_dump --format=custom" in line and "db.example:5432/runs" in line
    assert "s3cret" not in line
    assert not (tmp_path / "runs.dump").exists()


def test_cli_backup_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "--help"]) == 0
    assert "Example: evocade backup" in capsys.readouterr().out
