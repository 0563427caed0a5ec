"""`evocade replay`, `verify` and `plot` through the real entry point, on a real run's database.

The database comes from a real short run (`real_run_db`, tests/engine/conftest.py); tests that
change it work on a copy, altered with plain SQL as an attacker or a bug would.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageSequence

from engine.cli import main
from engine.series import load_series
from storage import Store
from tests.storage.factories import PONG_ENV, policy, rejected_result, result

pytestmark = pytest.mark.bwrap


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("error: ")
    return lines[0]


def _copy(real_run_db: tuple[Path, str], tmp_path: Path) -> Path:
    copy = tmp_path / "copy.db"
    shutil.copy(real_run_db[0], copy)
    return copy


def _episode_count(db: Path) -> int:
    with Store.open(db, create=False) as store:
        run = store.runs()[0]
        return sum(len(e.episodes) for e in store.run_evaluations(run.run_id))


def _evaluations(db: Path) -> list[tuple[str, int]]:
    """(evaluation id, its number of episodes) of the training seeds' evaluations (seed 0 on),
    oldest first; held-out ones (seeds from 1000) are left out."""
    with Store.open(db, create=False) as store:
        run = store.runs()[0]
        evaluations = store.run_evaluations(run.run_id)
        return [(e.id, len(e.episodes)) for e in evaluations if not e.env_key.endswith("holdout")]


def test_cli_verify_passes_on_a_real_run(real_run_db, capsys) -> None:
    db, run_id = real_run_db
    assert main(["verify", run_id[:8], "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"run {run_id[:8]}" in out and "0 mismatch" in out and "0 cannot be verified" in out
    assert main(["verify", run_id, "--db", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and report["mismatched"] == 0
    assert report["matched"] == _episode_count(db) >= 3


def test_cli_verify_fails_naming_the_episode_after_a_stored_return_is_altered(
    real_run_db, tmp_path: Path, capsys
) -> None:
    db = _copy(real_run_db, tmp_path)
    target, _ = _evaluations(db)[1]
    with sqlite3.connect(db) as connection:
        (episodes,) = connection.execute(
            "SELECT episodes FROM evaluation WHERE id = ?", (target,)
        ).fetchone()
        altered = json.loads(episodes)
        honest = altered[0]["return"]
        altered[0]["return"] = honest + 5
        connection.execute(
            "UPDATE evaluation SET episodes = ? WHERE id = ?", (json.dumps(altered), target)
        )
    assert main(["verify", real_run_db[1][:8], "--db", str(db)]) == 1
    out = capsys.readouterr().out
    mismatches = [line for line in out.splitlines() if line.startswith("MISMATCH")]
    assert len(mismatches) == 1, out
    line = mismatches[0]
    assert f"evaluation {target[:8]}" in line and "episode 0 seed 0" in line
    assert f"return stored {honest + 5:g}, replayed {honest:g}" in line
    assert "FAILED" in out

    # one evaluation on its own, as JSON
    assert main(["verify", target[:10], "--db", str(db), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    (episode,) = report["evaluations"][0]["episodes"]
    assert episode["verdict"] == "mismatch" and episode["evaluation_id"] == target
    assert episode["stored_return"] == honest + 5 and episode["replayed_return"] == honest


def test_cli_verify_lists_episodes_it_cannot_verify(real_run_db, tmp_path: Path, capsys) -> None:
    db = _copy(real_run_db, tmp_path)
    target, _ = _evaluations(db)[0]
    lost = zlib.compress(json.dumps({"storage_truncated": True, "rewards": []}).encode())
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE trace SET data = ? WHERE evaluation_id = ?", (lost, target))
    assert main(["verify", real_run_db[1], "--db", str(db)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("CANNOT VERIFY")]
    assert f"evaluation {target[:8]}" in line and "size cap" in line
    assert "1 cannot be verified" in out
    assert main(["verify", real_run_db[1], "--db", str(db), "--strict"]) == 1


def test_cli_replay_gif_has_the_expected_frames_and_size(real_run_db, tmp_path, capsys) -> None:
    db, _ = real_run_db
    evaluation, _ = _evaluations(db)[-1]
    out = tmp_path / "episode.gif"
    args = ["replay", evaluation[:8], "--episode", "0", "--out", str(out), "--db", str(db)]
    assert main([*args, "--from", "20", "--to", "120", "--stride", "5", "--scale", "1"]) == 0
    assert "20 frames" in capsys.readouterr().out
    with Image.open(out) as gif:
        assert gif.n_frames == 20  # type: ignore[attr-defined]  # steps 20, 25, ..., 115
        assert gif.size == (160, 210 + 28)  # the screen and the overlay bar below it
    plain = tmp_path / "plain.gif"
    assert (
        main(
            [
                "replay",
                evaluation,
                "--out",
                str(plain),
                "--db",
                str(db),
                "--no-overlay",
                "--scale",
                "2",
                "--to",
                "30",
            ]
        )
        == 0
    )
    with Image.open(plain) as gif:
        assert gif.size == (320, 420)
        # identical consecutive frames are merged in a GIF
        assert 1 <= gif.n_frames <= 30  # type: ignore[attr-defined]


def test_cli_replay_mp4_has_the_expected_frames(real_run_db, tmp_path, capsys) -> None:
    import imageio.v2 as imageio

    db, _ = real_run_db
    evaluation, _ = _evaluations(db)[0]
    out = tmp_path / "episode.mp4"
    assert main(["replay", evaluation, "--out", str(out), "--db", str(db), "--stride", "10"]) == 0
    reader: Any = imageio.get_reader(str(out))
    try:
        assert sum(1 for _ in reader) == 30  # 300 steps, one frame every 10
        assert tuple(reader.get_meta_data()["size"]) == (320, 420 + 56)
    finally:
        reader.close()


def test_cli_view_bad_input_gives_one_line_errors(real_run_db, tmp_path, capsys) -> None:
    db = _copy(real_run_db, tmp_path)
    run_id = real_run_db[1]
    with Store.open(db) as store:
        program = store.add_program(run_id, policy(99), origin="manual")
        rejected = store.record_evaluation(program.id, rejected_result(), seeds=[0])
        untraced = store.record_evaluation(program.id, result([1.0], trace_steps=None))
    evaluation, _ = _evaluations(real_run_db[0])[0]
    folder_named_gif = tmp_path / "folder.gif"
    folder_named_gif.mkdir()
    cases = [
        (["replay", "ffffffff", "--out", str(tmp_path / "a.gif")], "no evaluation matches"),
        (["replay", rejected.id, "--out", str(tmp_path / "a.gif")], "no episode to replay"),
        (["replay", untraced.id, "--out", str(tmp_path / "a.gif")], "no trace was stored"),
        (["replay", evaluation, "--out", str(tmp_path / "a.avi")], "must end in .gif or .mp4"),
        (["replay", evaluation, "--out", "/nonexistent/dir/a.gif"], "does not exist"),
        (["replay", evaluation, "--out", str(folder_named_gif)], "it is a directory"),
        (["replay", evaluation, "--episode", "42", "--out", str(tmp_path / "a.gif")], "seed 42"),
        (["replay", evaluation, "--from", "400", "--out", str(tmp_path / "a.gif")], "none in"),
        (["replay", evaluation, "--fps", "0", "--out", str(tmp_path / "a.gif")], "fps"),
        (["verify", "ffffffff"], "no run or evaluation matches"),
        (["plot", "ffffffff", "--out", str(tmp_path / "p.png")], "no run matches"),
        (["plot", run_id, "--out", str(tmp_path / "p.jpg")], "must end in .png or .svg"),
        (["plot", run_id, "--out", "/nonexistent/dir/p.png"], "cannot write"),
        (["serve", "--host", "0.0.0.0"], "refusing to bind 0.0.0.0"),
    ]
    for args, expected in cases:
        code = main([*args, "--db", str(db)])
        assert code == 2, args
        assert expected in _one_line_error(capsys), args
    assert not (tmp_path / "a.gif").exists() and not (tmp_path / "a.avi").exists()
    assert main(["verify", "abc", "--db", str(tmp_path / "missing.db")]) == 2
    assert "no database at" in _one_line_error(capsys)


def test_cli_plot_draws_several_runs_on_one_figure(real_run_db, tmp_path, capsys) -> None:
    db = _copy(real_run_db, tmp_path)
    with Store.open(db) as store:
        other = store.create_run("Pong", PONG_ENV, {"episodes": 2, "first_seed": 0})
        parent = None
        for number, score in enumerate([-3.0, -1.0, -2.0, 4.0]):
            program = store.add_program(other.id, policy(number), origin="seed", parent_id=parent)
            store.record_evaluation(program.id, result([score, score]))
            parent = program.id
    png, svg = tmp_path / "runs.png", tmp_path / "runs.svg"
    runs = [real_run_db[1][:8], other.id[:8]]
    assert main(["plot", *runs, "--out", str(png), "--db", str(db)]) == 0
    assert f"{other.id[:8]} Pong best +4.00" in capsys.readouterr().out
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 600
    assert main(["plot", *runs, "--out", str(svg), "--db", str(db)]) == 0
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert f"{other.id[:8]} Pong best so far" in text and f"{runs[0]} Pong best so far" in text


@pytest.mark.parametrize("command", ["replay", "verify", "plot", "serve"])
def test_cli_view_commands_have_help_with_an_example(command: str, capsys) -> None:
    assert main([command, "--help"]) == 0
    assert f"Example: evocade {command}" in capsys.readouterr().out


def _svg_texts(path: Path) -> list[str]:
    """Every piece of text drawn in an SVG figure (matplotlib writes it as <text> elements)."""
    from xml.etree import ElementTree

    root = ElementTree.parse(path).getroot()
    return [
        "".join(node.itertext()).strip() for node in root.iter("{http://www.w3.org/2000/svg}text")
    ]


def test_cli_plot_svg_has_both_axes_and_the_held_out_series(real_run_db, tmp_path, capsys) -> None:
    db, run_id = real_run_db
    with Store.open(db, create=False) as store:
        series = load_series(store, run_id)
    assert series.has_heldout, "the real run confirmed no program on held-out seeds"
    out = tmp_path / "run.svg"
    assert main(["plot", run_id, "--out", str(out), "--db", str(db)]) == 0
    texts = _svg_texts(out)
    assert "iteration (program, in creation order)" in texts
    assert "env steps played by the run" in texts  # the second panel's axis
    assert f"{series.label} best so far" in texts
    assert f"{series.label} held-out best" in texts  # the legend has the held-out curve
    assert "score per iteration and best so far" in texts


def test_cli_replay_fps_sets_the_gif_frame_duration(real_run_db, tmp_path, capsys) -> None:
    db, _ = real_run_db
    evaluation, _ = _evaluations(db)[0]
    durations = {}
    for fps in (10, 25):
        out = tmp_path / f"fps{fps}.gif"
        args = ["replay", evaluation, "--out", str(out), "--db", str(db), "--to", "12"]
        assert main([*args, "--fps", str(fps), "--scale", "1"]) == 0
        with Image.open(out) as gif:
            durations[fps] = {gif.info["duration"] for _ in ImageSequence.Iterator(gif)}
    assert durations == {10: {100}, 25: {40}}


def test_cli_replay_overlay_draws_text_below_the_game(real_run_db, tmp_path, capsys) -> None:
    """The overlay adds a bar whose text (the step counter) changes from frame to frame; the
    game above it is the same picture as without the overlay."""
    import numpy as np

    db, _ = real_run_db
    evaluation, _ = _evaluations(db)[0]
    frames = {}
    for flag in ("--overlay", "--no-overlay"):
        out = tmp_path / f"{flag}.gif"
        args = ["replay", evaluation, "--out", str(out), "--db", str(db), "--from", "40"]
        assert main([*args, "--to", "42", "--scale", "1", flag]) == 0
        with Image.open(out) as gif:
            frames[flag] = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    with_bar, plain = frames["--overlay"], frames["--no-overlay"]
    assert with_bar[0].shape == (238, 160, 3) and plain[0].shape == (210, 160, 3)
    bar = with_bar[0][210:]
    assert len(np.unique(bar.reshape(-1, 3), axis=0)) > 2  # text drawn on the dark bar
    assert not np.array_equal(with_bar[0][210:], with_bar[1][210:])  # "step 41" vs "step 42"
    assert np.array_equal(with_bar[0][:210], plain[0])


@pytest.fixture(scope="module")
def breakout_run_db(
    tmp_path_factory: pytest.TempPathFactory, bwrap_backend: Any
) -> tuple[Path, str]:
    """A real short Breakout run under the default env setting (sticky actions)."""
    import contextlib
    import io

    path = tmp_path_factory.mktemp("breakout") / "run.db"
    args = ["run", "--game", "Breakout", "--iterations", "2", "--episodes", "2"]
    args += ["--max-steps", "400", "--sandbox", "bwrap", "--db", str(path), "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0, out.getvalue()
    return path, json.loads(out.getvalue().strip().splitlines()[-1])["run_id"]


def test_cli_verify_passes_on_a_real_breakout_run(breakout_run_db, capsys) -> None:
    db, run_id = breakout_run_db
    with Store.open(db, create=False) as store:
        run = store.get_run(run_id)
        evaluations = store.run_evaluations(run_id)
    assert run.game == "Breakout" and run.env["repeat_action_probability"] == 0.25
    episodes = [e for evaluation in evaluations for e in evaluation.episodes]
    assert len(episodes) >= 4 and any(e["return"] != 0 for e in episodes)
    assert main(["verify", run_id, "--db", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and report["mismatched"] == 0
    assert report["matched"] == len(episodes)


def test_cli_replay_gif_of_a_long_episode_is_strided_to_fit(
    breakout_run_db, tmp_path, capsys
) -> None:
    """A 3100-step episode (Breakout without FIRE never ends) as a GIF: one frame every 3
    steps, under the 1500-frame bound; an explicit --stride that does not fit is refused."""
    db = tmp_path / "long.db"
    shutil.copy(breakout_run_db[0], db)
    with Store.open(db) as store:
        run = store.get_run(breakout_run_db[1])
        program = store.add_program(run.id, policy(7), origin="manual")
        long = result([0.0], lengths=[3100], status="timeout", game="Breakout", env=run.env)
        long["episodes"][0]["trace"] = {"actions": "0" * 3100, "rewards": [], "life_losses": []}
        evaluation = store.record_evaluation(program.id, long)
    out = tmp_path / "long.gif"
    args = ["replay", evaluation.id, "--out", str(out), "--db", str(db), "--scale", "1"]
    assert main(args) == 0
    assert "1034 frames (one every 3 steps, to stay under 1500 GIF frames)" in (
        capsys.readouterr().out
    )
    with Image.open(out) as gif:
        # steps 0, 3, ..., 3099; each frame differs (the overlay's step counter)
        assert gif.n_frames == 1034  # type: ignore[attr-defined]
    assert main([*args, "--stride", "1"]) == 2
    assert "pass --stride 3" in _one_line_error(capsys)
    assert main([*args, "--out", str(tmp_path / "window.gif"), "--from", "100", "--to", "400"]) == 0
    with Image.open(tmp_path / "window.gif") as gif:
        assert gif.n_frames == 300  # type: ignore[attr-defined]  # the overlay changes each one
