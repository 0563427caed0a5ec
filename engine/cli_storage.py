"""The storage commands: runs, show, lineage, diff, best, revert, history.

Each command parses its arguments, asks `storage.Store`, and prints what the pure functions
of `engine.cli_storage_render` make of the answer (terminal-safe text, or JSON). Programs and
runs are named by any unique prefix of their id (the first 8 characters are shown everywhere).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli_storage_render import (
    emit,
    evaluation_dict,
    field,
    history_json,
    program_dict,
    render_history,
    render_lineage,
    render_program,
    render_runs,
    to_json,
)
from engine.db_option import DEFAULT_DB, DbOption, opened_store
from engine.errors import UserError
from engine.textsafe import safe_block
from storage import Store, holdout_env_key, short_id
from storage.leases import shown_status
from storage.queries import ScoredProgram

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ProgramArgument = Annotated[str, typer.Argument(help="Program id or a unique prefix of it.")]
RunArgument = Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")]


def export_policy(store: Store, best: ScoredProgram, path: Path, *, force: bool = False) -> None:
    """Write the program as a standalone policy module with a header saying where it is from.

    An existing file is kept unless `force` (the database itself, never). The header's
    fields come from the database, so each is one escaped line: a newline in one cannot put
    code into the file.
    """
    target = path.expanduser().resolve()
    if store.path is not None:
        database = store.path.resolve()
        if target in {database, Path(f"{database}-wal"), Path(f"{database}-shm")}:
            raise UserError(f"refusing to export over the database itself: {path}")
    if target.is_dir():
        raise UserError(f"{path} is a directory; give a file name for --export")
    if target.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    program = store.get_program(best.program_id)
    run = store.get_run(program.run_id)
    evaluation = store.get_evaluation(best.evaluation_id) if best.evaluation_id else None
    seeds = ",".join(field(seed) for seed in evaluation.seeds) if evaluation else "-"
    header = [
        f"# evocade policy: program {field(program.id)} of run {field(run.id)} ({field(run.game)})",
        f"# mean return {best.mean_return:+.2f} over seeds {seeds} ({field(best.status)}, "
        f"{best.total_steps} steps)",
        f"# env {field(evaluation.env_key if evaluation else run.env)}",
        "# defines act(obs) -> int: an index into the game's minimal action set",
        "",
        "",
    ]
    try:
        path.write_text("\n".join(header) + program.source.rstrip("\n") + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}") from error


# -- commands --------------------------------------------------------------------------------


def runs_command(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """List every run with its program and evaluation counts and best score.

    Example: evocade runs --db experiments.db
    """
    with opened_store(db) as store:
        summaries = store.runs()
        extras = {summary.run_id: run_extras(store, summary.run_id) for summary in summaries}
        if as_json:
            print(to_json([{**asdict(s), **extras[s.run_id]} for s in summaries]))
        else:
            emit(render_runs(summaries, store.location, extras))


def show_command(
    program: ProgramArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """Show a program: metadata, static-check report, evaluations and source.

    Example: evocade show 1a2b3c4d
    """
    with opened_store(db) as store:
        found = store.resolve_program(program)
        evaluations = store.evaluations(found.id)
        if as_json:
            data = program_dict(found)
            data["evaluations"] = [evaluation_dict(evaluation) for evaluation in evaluations]
            print(to_json(data))
        else:
            emit(render_program(found, evaluations))


def lineage_command(
    program: ProgramArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """Show a program's ancestors (root first) and its descendants as a tree, with scores.

    Example: evocade lineage 1a2b3c4d --json
    """
    with opened_store(db) as store:
        lineage = store.lineage(store.resolve_program(program).id)
        if as_json:
            print(to_json(asdict(lineage)))
        else:
            emit(render_lineage(lineage))


def diff_command(
    a: Annotated[str, typer.Argument(help="Old program (id prefix).")],
    b: Annotated[str, typer.Argument(help="New program (id prefix).")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Print a unified diff from program A's source to program B's (nothing if equal).

    Example: evocade diff 1a2b3c4d 5e6f7a8b
    """
    with opened_store(db) as store:
        first, second = store.resolve_program(a), store.resolve_program(b)
        text = store.diff(first.id, second.id)
        if as_json:
            print(to_json({"a": first.id, "b": second.id, "equal": not text, "diff": text}))
        elif text:
            print(safe_block(text), end="")


def run_extras(store: Store, run_id: str) -> dict[str, Any]:
    """What a run cost and its confirmed best: env steps (smoke, training and held-out),
    LLM tokens and cost (from the stored calls), wall seconds over every invocation, and the
    best score on held-out seeds (None when the run never confirmed one)."""
    usage = store.run_usage(run_id)
    run = store.get_run(run_id)
    shown = shown_status(run.status, store.lease(run_id), datetime.now(UTC), store.host)
    held = store.best_program(run_id, holdout_env_key(run.game, run.env))
    iterations = [e for e in store.events(run_id) if e.kind == "iteration"]
    wall = (iterations[-1].data or {}).get("wall_seconds") if iterations else None
    return {
        "env_steps": usage.env_steps,
        "tokens": usage.tokens,
        "cost": usage.cost,
        "wall_seconds": wall,
        "best_holdout_mean": held.mean_return if held else None,
        "best_holdout_program_id": held.program_id if held else None,
        # `running` in the database, but the process that drove it is gone (kill -9, a crash)
        "interrupted": shown == "interrupted",
    }


def _best_dict(best: ScoredProgram, run_id: str, game: str, holdout: bool) -> dict[str, Any]:
    return {"run_id": run_id, "game": game, "held_out": holdout, **asdict(best)}


def best_command(
    run: RunArgument,
    db: DbOption = DEFAULT_DB,
    export: Annotated[
        Path | None,
        typer.Option("--export", metavar="FILE", help="Write the best policy to FILE."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --export: overwrite FILE if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a run's best program; with --export, write it as a standalone policy file.

    Best = highest mean return on the run's held-out seeds, where the run confirmed candidates
    on them (the default: a candidate that beats the best on its training seeds is played on
    held-out seeds before it may become the best); otherwise the highest mean over an `ok`
    training evaluation (a failed one only if none is ok), ties broken by fewer steps, then the
    older program. --export never overwrites a file unless --force is given.

    Example: evocade best 9f8e7d6c --export pong_policy.py
    """
    if force and export is None:
        raise UserError("--force only applies with --export FILE")
    with opened_store(db) as store:
        found = store.resolve_run(run)
        best = store.best_program(found.id, holdout_env_key(found.game, found.env))
        held_out = best is not None
        best = best or store.best_program(found.id)
        if best is None:
            raise UserError(f"run {short_id(found.id)} has no evaluated program yet")
        if export is not None:
            export_policy(store, best, export, force=force)
        if as_json:
            data = _best_dict(best, found.id, found.game, held_out)
            data["exported_to"] = str(export) if export is not None else None
            print(to_json(data))
            return
        emit(
            f"best program {field(best.short_id)} of run {field(short_id(found.id))} "
            f"({field(found.game)}): mean {best.mean_return:+.2f}"
            f"{' on held-out seeds' if held_out else ''} ({field(best.status)}, "
            f"{best.total_steps} steps, evaluation {field(short_id(best.evaluation_id))})"
        )
        if export is not None:
            emit(f"wrote {field(export)}")


def revert_command(
    run: RunArgument,
    to: Annotated[str, typer.Option("--to", metavar="PROGRAM", help="Program to go back to.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Move a run's head back to an earlier program; nothing is deleted.

    The run's next iteration builds on that program; a `revert` event records the move.

    Example: evocade revert 9f8e7d6c --to 1a2b3c4d
    """
    with opened_store(db) as store:
        found = store.resolve_run(run)
        program = store.resolve_program(to)
        previous = found.head_program_id
        store.revert(found.id, program.id)
        if as_json:
            print(to_json({"run_id": found.id, "from": previous, "to": program.id}))
            return
        emit(
            f"run {field(short_id(found.id))}: head {field(short_id(previous))} -> "
            f"{field(short_id(program.id))} (revert recorded; nothing deleted)"
        )


def history_command(
    run: RunArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """List a run's programs in order with their scores, failed iterations and reverts.

    Each program with its score and the best so far; where they happened, the iterations
    that produced no program, every revert or rollback of the head and every migration
    between islands; ISLAND is the lineage a proposal grew in (population runs).

    Example: evocade history 9f8e7d6c --json
    """
    with opened_store(db) as store:
        found = store.resolve_run(run)
        entries = store.history_with_events(found.id)
        islands = {pid: island for pid, island, _, _ in store.numbered_programs(found.id)}
        if as_json:
            print(to_json(history_json(entries, islands)))
        else:
            emit(render_history(entries, found.id, islands))


COMMANDS: dict[str, Callable[..., None]] = {
    "runs": runs_command,
    "show": show_command,
    "lineage": lineage_command,
    "diff": diff_command,
    "best": best_command,
    "revert": revert_command,
    "history": history_command,
}


def register(app: typer.Typer) -> None:
    """Add the storage commands to `app` (idempotent: a second call adds nothing)."""
    present = {info.name for info in app.registered_commands}
    for name, function in COMMANDS.items():
        if name not in present:
            app.command(name)(function)
