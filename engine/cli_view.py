"""The commands that let a person see and check what a run did: replay, verify, plot, serve.

Each parses its arguments, asks storage, and hands the work to a module a test can call
directly (`engine.audit`, `engine.video`, `engine.plots`, `engine.web`). None of them runs
policy code: replays and verification re-simulate stored action logs on the host.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.audit import AuditReport, EpisodeCheck, Unreplayable, audit, episode_log
from engine.db_option import DEFAULT_DB, DbOption, opened_store, storage_errors
from engine.errors import UserError
from engine.textsafe import safe_block, safe_line
from storage import NotFoundError, Store, short_id
from storage.models import Evaluation

if TYPE_CHECKING:
    from engine.video import VideoSettings

DEFAULT_PORT = 8613


class Mismatch(UserError):
    """`verify` found stored scores that the replays disagree with."""

    exit_code = 1


# -- replay ----------------------------------------------------------------------------------


def pick_episode(evaluation: Evaluation, seed: int | None) -> int:
    """The index of the episode played with `seed` (the first episode when None)."""
    episodes = evaluation.episodes or []
    if not episodes:
        why = (
            " (rejected by the static check, never run)" if evaluation.status == "rejected" else ""
        )
        raise UserError(f"evaluation {short_id(evaluation.id)} has no episode to replay{why}")
    if seed is None:
        return 0
    for index, episode in enumerate(episodes):
        if int(episode.get("seed", -1)) == seed:
            return index
    seeds = ", ".join(str(episode.get("seed")) for episode in episodes)
    raise UserError(
        f"evaluation {short_id(evaluation.id)} has no episode with seed {seed} (seeds: {seeds})"
    )


def render_replay(
    store: Store,
    evaluation: Evaluation,
    index: int,
    out: Path,
    *,
    settings: VideoSettings,
    first: int = 0,
    stop: int | None = None,
    stride: int | None = None,
) -> tuple[int, int, str]:
    """Write episode `index` of `evaluation` to `out`; (frames, stride used, a note)."""
    from engine.video import VideoError, video_format, write_video
    from sandbox.games import get_game
    from sandbox.replay import FrameWindow, ReplayError, replay_frames, stride_for

    try:
        suffix = video_format(out)
        _check_writable(out)
        traces = {trace.episode: trace.data for trace in store.traces(evaluation.id)}
        log = episode_log(evaluation, index, traces.get(index))
        length = len(log.actions)
        window = FrameWindow(first, stop, stride or 1)
        shown = len(window.steps(length))
        if shown == 0:
            raise UserError(f"the episode has {length} steps: none in the range asked for")
        note = ""
        if suffix == ".gif" and shown > settings.max_gif_frames:
            if stride is not None:
                raise UserError(
                    f"{shown} frames is more than a GIF can hold here "
                    f"({settings.max_gif_frames}); pass --stride "
                    f"{stride * stride_for(shown, settings.max_gif_frames)}, a --from/--to "
                    "range, or write .mp4"
                )
            chosen = stride_for(shown, settings.max_gif_frames)
            window = FrameWindow(first, stop, chosen)
            note = f"one every {chosen} steps, to stay under {settings.max_gif_frames} GIF frames"
        frames = write_video(out, replay_frames(log, window), get_game(log.game), length, settings)
    except (Unreplayable, ReplayError, VideoError) as error:
        raise UserError(str(error)) from None
    return frames, window.stride, note


def _check_writable(out: Path) -> None:
    """Fail before replaying when the file cannot be written (a replay can take a while)."""
    folder = out.expanduser().absolute().parent
    if not folder.is_dir():
        raise UserError(f"cannot write {out}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write {out}: directory {folder} is not writable")
    if out.is_dir():
        raise UserError(f"cannot write {out}: it is a directory")


def replay_command(
    evaluation: Annotated[str, typer.Argument(help="Evaluation id or a unique prefix of it.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="FILE", help="FILE.gif or FILE.mp4 to write.")
    ],
    episode: Annotated[
        int | None,
        typer.Option("--episode", metavar="SEED", help="The episode played with this seed."),
    ] = None,
    fps: Annotated[float, typer.Option(help="Frames per second of the video.")] = 30.0,
    scale: Annotated[int, typer.Option(help="Integer zoom of the 160x210 screen.")] = 2,
    first: Annotated[int, typer.Option("--from", metavar="STEP", help="First step shown.")] = 0,
    stop: Annotated[
        int | None,
        typer.Option("--to", metavar="STEP", help="Stop before this step (default: the end)."),
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option(help="Show every N-th step (GIF default: what fits 1500 frames)."),
    ] = None,
    overlay: Annotated[
        bool, typer.Option("--overlay/--no-overlay", help="Step, score and action below.")
    ] = True,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Re-simulate a stored episode from its action log and write it as a GIF or MP4.

    The real emulator replays the episode's stored actions from its seed and env setting
    (no policy code runs, so no sandbox is needed).

    Example: evocade replay 5e6f7a8b --episode 1 --out episode.gif --from 200 --to 800
    """
    from engine.video import VideoError, VideoSettings

    try:
        settings = VideoSettings(fps=fps, scale=scale, overlay=overlay)
    except VideoError as error:
        raise UserError(str(error)) from None
    with opened_store(db) as store:
        found = store.resolve_evaluation(evaluation)
        index = pick_episode(found, episode)
        frames, used, note = render_replay(
            store, found, index, out, settings=settings, first=first, stop=stop, stride=stride
        )
        stored = found.episodes[index]
    typer.echo(
        safe_line(  # status and numbers come from the database: untrusted text
            f"wrote {out}: {frames} frames"
            + (f" ({note})" if note else f" (one every {used} steps)" if used > 1 else "")
            + f"; seed {stored.get('seed')} of evaluation {short_id(found.id)}, "
            f"{stored.get('status')}, return {float(stored.get('return', 0.0)):g} in "
            f"{stored.get('length')} steps"
        )
    )


# -- verify ----------------------------------------------------------------------------------


def resolve_target(store: Store, target: str) -> tuple[str, list[Evaluation]]:
    """A run (all its evaluations) or one evaluation, by id prefix; ("run 1a2b3c4d", [...])."""
    run_id: str | None = None
    evaluation: Evaluation | None = None
    with contextlib.suppress(NotFoundError):
        run_id = store.resolve_run(target).id
    with contextlib.suppress(NotFoundError):
        evaluation = store.resolve_evaluation(target)
    if run_id is not None and evaluation is not None:
        raise UserError(f"{target!r} starts both a run id and an evaluation id: type more of it")
    if run_id is not None:
        return f"run {short_id(run_id)}", store.run_evaluations(run_id)
    if evaluation is not None:
        return f"evaluation {short_id(evaluation.id)}", [evaluation]
    raise UserError(f"no run or evaluation matches {target!r}")


def _check_line(check: EpisodeCheck) -> str:
    return (
        f"evaluation {short_id(check.evaluation_id)} (program {short_id(check.program_id)}) "
        f"episode {check.episode} seed {check.seed} [{check.status}]: {check.reason}"
    )


def render_audit(report: AuditReport) -> str:
    matched = report.episodes("match")
    mismatched = report.episodes("mismatch")
    unverifiable = report.episodes("unverifiable")
    lines = [
        f"{report.target}: {len(report.evaluations)} evaluations, "
        f"{len(matched) + len(mismatched) + len(unverifiable)} episodes replayed: "
        f"{len(matched)} match, {len(mismatched)} mismatch, "
        f"{len(unverifiable)} cannot be verified"
    ]
    for check in mismatched:
        lines.append("MISMATCH " + _check_line(check))
    for entry in report.mean_problems:
        lines.append(
            f"MISMATCH evaluation {short_id(entry.evaluation_id)} "
            f"(program {short_id(entry.program_id)}): {entry.mean_problem}"
        )
    for check in unverifiable:
        lines.append("CANNOT VERIFY " + _check_line(check))
    if not report.passed:
        lines.append("FAILED: stored scores disagree with their replays")
    elif unverifiable:
        lines.append("passed for every episode that could be verified")
    else:
        lines.append("verified: every stored return and length was recomputed from its action log")
    return "\n".join(lines)


def verify_command(
    target: Annotated[str, typer.Argument(help="Run id or evaluation id (a unique prefix).")],
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    strict: Annotated[
        bool, typer.Option(help="Also fail when some episode cannot be verified.")
    ] = False,
) -> None:
    """Replay every stored episode's action log and confirm its stored return and length.

    Exit 0 when everything matches, 1 when a stored score disagrees with its replay (each
    mismatch named: evaluation, episode, seed, stored vs replayed), 2 on bad input. Episodes
    without a full action log are listed with the reason they cannot be verified.

    Example: evocade verify 9f8e7d6c --json
    """
    import json

    with opened_store(db) as store:
        label, evaluations = resolve_target(store, target)
        live = sys.stderr.isatty() and not as_json

        def progress(done: int, total: int) -> None:
            if live:
                print(f"\rverifying {done}/{total} evaluations", end="", file=sys.stderr)

        with storage_errors():
            report = audit(store, label, evaluations, progress=progress)
        if live:
            print(file=sys.stderr)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        typer.echo(safe_block(render_audit(report)))  # stored statuses, reasons: untrusted
    if not report.passed or (strict and report.episodes("unverifiable")):
        raise typer.Exit(1)


# -- plot ------------------------------------------------------------------------------------


def plot_command(
    runs: Annotated[list[str], typer.Argument(help="One or more run ids (unique prefixes).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="FILE", help="FILE.png or FILE.svg to write.")
    ],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Plot score per iteration and best so far, against iterations and env steps.

    Several runs go on one figure to compare them; held-out scores are drawn when a run has
    them (dashed).

    Example: evocade plot 9f8e7d6c 1a2b3c4d --out compare.png
    """
    from engine.plots import PlotError, plot_format, plot_runs
    from engine.series import load_series

    try:
        plot_format(out)
    except PlotError as error:
        raise UserError(str(error)) from None
    with opened_store(db) as store:
        series = [load_series(store, store.resolve_run(run).id) for run in runs]
    try:
        plot_runs(series, out)
    except PlotError as error:
        raise UserError(str(error)) from None
    best = ", ".join(
        f"{run.label} best {run.best:+.2f}" if run.best is not None else f"{run.label} no score"
        for run in series
    )
    typer.echo(safe_line(f"wrote {out}: {best}"))


# -- serve -----------------------------------------------------------------------------------


def serve_command(
    db: DbOption = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Address to bind (loopback only by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote", help="Permit a non-loopback --host (the site has no login)."
        ),
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Where rendered replays are cached."),
    ] = None,
) -> None:
    """Serve a read-only web view of the database: runs, lineage, programs and replays.

    The database is opened read-only (the connection itself refuses writes); only GET and
    HEAD are answered. Binds 127.0.0.1 unless --allow-remote is given with another --host.

    Example: evocade serve --db evocade.db --port 8613
    """
    from engine.web.app import WebSettings, check_host, create_app, default_cache_dir

    warning = check_host(host, allow_remote)
    if warning:
        print(safe_line(f"warning: {warning}"), file=sys.stderr, flush=True)
    if not 0 < port < 65536:
        raise UserError(f"--port must be 1..65535 (got {port})")
    with storage_errors():
        store = Store.open_read_only(db)
    try:
        settings = WebSettings(
            cache_dir=cache_dir or default_cache_dir(), allow_remote=allow_remote
        )
        app = create_app(store, settings)
        listening = _bound_socket(host, port)
        import uvicorn

        config = uvicorn.Config(app, log_level="warning", server_header=False)
        print(
            # the location comes from --db or the environment: shown, never obeyed
            safe_line(f"serving {store.location} read-only at http://{host}:{port}/")
            + " (Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )
        with listening:
            uvicorn.Server(config).run(sockets=[listening])
    except OSError as error:
        raise UserError(f"cannot serve on {host}:{port}: {error.strerror or error}") from None
    finally:
        store.close()


def _bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, so that a busy port or an address this machine does not
    have is one clear error here (uvicorn would log it and exit on its own)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError:
        listening.close()
        raise
    return listening


COMMANDS: dict[str, Callable[..., None]] = {
    "replay": replay_command,
    "verify": verify_command,
    "plot": plot_command,
    "serve": serve_command,
}


def register(app: typer.Typer) -> None:
    """Add the viewing commands to `app` (idempotent)."""
    present = {info.name for info in app.registered_commands}
    for name, function in COMMANDS.items():
        if name not in present:
            app.command(name)(function)
