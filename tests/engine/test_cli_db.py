"""`--db` as a person types it: empty, a URL of an unknown kind, a 0-byte file, a password.

Each bad value gets one line that says what is accepted, exit 2, and leaves every file as it
was. A 0-byte file is refused by every command alike (see `engine/db_option.py` for why).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.cli import main
from storage import Store
from tests.storage.factories import PONG_ENV, policy

ALL_DB_COMMANDS = {
    "runs": ["runs"],
    "show": ["show", "abcd"],
    "lineage": ["lineage", "abcd"],
    "diff": ["diff", "abcd", "ef01"],
    "best": ["best", "abcd"],
    "revert": ["revert", "abcd", "--to", "ef01"],
    "history": ["history", "abcd"],
    "log": ["log", "abcd"],
    "run": ["run", "--game", "Pong", "--iterations", "1"],
    "run --resume": ["run", "--resume", "abcd"],
}


def _one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("command", sorted(ALL_DB_COMMANDS))
def test_cli_db_zero_byte_file_is_refused_by_every_command(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    message = _one_line_error(capsys, *ALL_DB_COMMANDS[command], "--db", str(db))
    assert message == (
        f"error: {db} is an empty file, not an evocade database: evocade does not write into "
        "files it did not create; delete it to start a new database there, or choose "
        "another --db"
    )
    assert db.stat().st_size == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty.db"]


def test_cli_db_zero_byte_file_is_reported_by_doctor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    main(["doctor", "--db", str(db), "--json"])
    database = json.loads(capsys.readouterr().out)["database"]
    assert "is an empty file" in database["problem"]
    assert db.stat().st_size == 0


@pytest.mark.parametrize("command", sorted(ALL_DB_COMMANDS))
def test_cli_db_empty_value_says_what_is_accepted(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = _one_line_error(capsys, *ALL_DB_COMMANDS[command], "--db", "")
    assert message == (
        "error: --db is empty: give a SQLite file path (e.g. evocade.db) or a database URL "
        "(sqlite:///PATH, postgresql://USER:PASSWORD@HOST/NAME)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(ALL_DB_COMMANDS))
@pytest.mark.parametrize(
    ("url", "kind"),
    [("foo://x", "'foo'"), ("postgresql+nodriver://u@h/d", "'postgresql+nodriver'")],
)
def test_cli_db_unknown_url_kind_is_plain_language(
    command: str, url: str, kind: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = _one_line_error(capsys, *ALL_DB_COMMANDS[command], "--db", url)
    assert f"evocade does not know database kind {kind}" in message
    assert "sqlite:///PATH" in message and "postgresql+psycopg://" in message
    for jargon in ("plugin", "sqlalchemy", "dialect"):
        assert jargon not in message.lower()
    assert list(tmp_path.iterdir()) == []


def test_cli_db_unparsable_url_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line_error(capsys, "runs", "--db", "postgresql://user:s3cret@[::1")
    assert "is not a database URL" in message and "sqlite:///PATH" in message
    assert "s3cret" not in message and "user:***@" in message


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgresql"])
def test_cli_db_doctor_masks_the_password(scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{scheme}://user:s3cret@127.0.0.1:1/evocade"
    main(["doctor", "--db", url])
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert f"database       {scheme}://user:***@127.0.0.1:1/evocade (URL)" in out
    main(["doctor", "--db", url, "--json"])
    raw = capsys.readouterr().out
    assert "s3cret" not in raw
    assert json.loads(raw)["database"]["location"].endswith("user:***@127.0.0.1:1/evocade")


def _add_until_shared_prefix(store: Store, run_id: str) -> str:
    numbers = iter(range(100, 400))
    while True:
        ids = [row.program_id for row in store.history(run_id)]
        firsts = [program_id[0] for program_id in ids]
        shared = [char for char in firsts if firsts.count(char) > 1]
        if shared:
            return shared[0]
        store.add_program(run_id, policy(next(numbers)), origin="manual")


def test_cli_db_ambiguous_program_prefix_lists_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "evocade.db"
    with Store.open(db) as store:
        run = store.create_run("Pong", PONG_ENV)
        prefix = _add_until_shared_prefix(store, run.id)
        matching = sorted(p.program_id for p in store.history(run.id) if p.program_id[0] == prefix)
    before = db.read_bytes()
    message = _one_line_error(capsys, "show", prefix, "--db", str(db))
    assert message.startswith(f"error: ambiguous program id '{prefix}': matches {len(matching)} ")
    for program_id in matching[:5]:
        assert f"{program_id[:8]} (manual program, gen 0)" in message
    assert message.endswith("type more of the id")
    assert db.read_bytes() == before


def test_cli_db_ambiguous_run_prefix_lists_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "evocade.db"
    with Store.open(db) as store:
        runs: list[str] = []
        while True:
            runs.append(store.create_run("Breakout", {}).id)
            firsts = [run_id[0] for run_id in runs]
            shared = [char for char in firsts if firsts.count(char) > 1]
            if shared:
                break
    prefix = shared[0]
    message = _one_line_error(capsys, "history", prefix, "--db", str(db))
    for run_id in sorted(r for r in runs if r[0] == prefix)[:5]:
        assert f"{run_id[:8]} (Breakout run, running)" in message


def test_cli_db_url_env_var_used_when_flag_absent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    monkeypatch.setenv("EVOCADE_DB", str(db))
    assert "is an empty file" in _one_line_error(capsys, "runs")
    assert os.path.getsize(db) == 0


def test_cli_db_ambiguous_evaluation_prefix_lists_evaluations(tmp_path: Path) -> None:
    from storage import AmbiguousIdError
    from tests.storage.factories import result

    with Store.open(tmp_path / "evocade.db") as store:
        run = store.create_run("Pong", PONG_ENV)
        program = store.add_program(run.id, policy(0), origin="seed")
        evaluations: list[str] = []
        while True:
            evaluations.append(store.record_evaluation(program.id, result([-1.0])).id)
            firsts = [e[0] for e in evaluations]
            shared = [char for char in firsts if firsts.count(char) > 1]
            if shared:
                break
        with pytest.raises(AmbiguousIdError) as caught:
            store.resolve_evaluation(shared[0])
    message = str(caught.value)
    for evaluation_id in sorted(e for e in evaluations if e[0] == shared[0])[:5]:
        assert f"{evaluation_id[:8]} (Pong evaluation, ok)" in message
    assert "run," not in message  # not mistaken for runs
