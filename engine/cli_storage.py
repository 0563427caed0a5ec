"""The storage commands: runs, show, lineage, diff, best, revert, history.

Each command parses its arguments, asks `storage.Store`, and prints; the `render_*` functions
turn query results into text and can be tested without a command line. Programs and runs are
named by any unique prefix of their id (the first 8 characters are shown everywhere).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.db_option import DEFAULT_DB, DbOption, opened_store
from engine.errors import UserError
from storage import Store, short_id
from storage.models import Evaluation, Program
from storage.queries import HistoryRow, Lineage, LineageNode, RunSummary, ScoredProgram

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ProgramArgument = Annotated[str, typer.Argument(help="Program id or a unique prefix of it.")]
RunArgument = Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")]


# -- rendering -------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_json_default)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _score(mean_return: float | None, status: str | None) -> str:
    if status is None:
        return "not evaluated"
    if mean_return is None:
        return status
    return f"{mean_return:+.2f} {status}"


def _node_line(node: ScoredProgram) -> str:
    return (
        f"{node.short_id}  gen {node.generation:<4} {node.origin:<8} "
        f"{_score(node.mean_return, node.status)}"
    )


def render_runs(summaries: Sequence[RunSummary], where: str) -> str:
    if not summaries:
        return f"no runs in {where}"
    lines = [
        f"{'RUN':<8}  {'GAME':<14} {'STATUS':<9} {'PROGRAMS':>8} {'EVALS':>6} "
        f"{'BEST':>9}  {'HEAD':<8}  CREATED"
    ]
    for run in summaries:
        best = f"{run.best_mean_return:+.2f}" if run.best_mean_return is not None else "-"
        lines.append(
            f"{run.short_id:<8}  {run.game:<14} {run.status:<9} {run.programs:>8} "
            f"{run.evaluations:>6} {best:>9}  {short_id(run.head_program_id):<8}  "
            f"{_when(run.created_at)}"
        )
    return "\n".join(lines)


def render_descendants(root_id: str, nodes: Sequence[LineageNode]) -> list[str]:
    """A tree that indents only where it branches: a straight chain stays one column."""
    children: dict[str | None, list[LineageNode]] = defaultdict(list)
    for node in nodes:
        children[node.parent_id].append(node)
    lines: list[str] = []
    stack: list[tuple[LineageNode, str, str]] = []

    def push_children(parent_id: str, prefix: str) -> None:
        kids = children.get(parent_id, [])
        if len(kids) == 1:
            stack.append((kids[0], prefix, prefix))
            return
        entries = [
            (kid, prefix + ("└─ " if last else "├─ "), prefix + ("   " if last else "│  "))
            for kid, last in ((kid, i == len(kids) - 1) for i, kid in enumerate(kids))
        ]
        stack.extend(reversed(entries))

    push_children(root_id, "   ")  # under the id column of the program's own line
    while stack:
        node, own_prefix, child_prefix = stack.pop()
        lines.append(own_prefix + _node_line(node))
        push_children(node.program_id, child_prefix)
    return lines


def render_lineage(lineage: Lineage) -> str:
    program = lineage.program
    lines = [
        f"lineage of program {program.short_id} (run {short_id(program.run_id)}): "
        f"{len(lineage.ancestors)} ancestors, {len(lineage.descendants)} descendants"
    ]
    for node in reversed(lineage.ancestors):
        lines.append(f"   {_node_line(node)}")
    lines.append(f"*  {_node_line(program)}")
    lines.extend(render_descendants(program.program_id, lineage.descendants))
    return "\n".join(lines)


def render_history(rows: Sequence[HistoryRow], run_id: str) -> str:
    if not rows:
        return f"run {short_id(run_id)} has no programs yet"
    lines = [
        f"{'#':>4}  {'PROGRAM':<8}  {'PARENT':<8}  {'GEN':>4}  {'ORIGIN':<8}  "
        f"{'STATUS':<14}  {'MEAN':>9}  {'BEST SO FAR':>11}"
    ]
    for number, row in enumerate(rows, start=1):
        mean = f"{row.mean_return:+.2f}" if row.mean_return is not None else "-"
        best = f"{row.best_so_far:+.2f}" if row.best_so_far is not None else "-"
        lines.append(
            f"{number:>4}  {row.short_id:<8}  {short_id(row.parent_id):<8}  "
            f"{row.generation:>4}  {row.origin:<8}  {row.status or 'not evaluated':<14}  "
            f"{mean:>9}  {best:>11}"
        )
    return "\n".join(lines)


def _evaluation_line(evaluation: Evaluation) -> str:
    mean = f"{evaluation.mean_return:+.2f}" if evaluation.mean_return is not None else "-"
    seeds = ",".join(str(seed) for seed in evaluation.seeds) or "-"
    return (
        f"  {short_id(evaluation.id)}  {evaluation.status:<14} mean {mean:>8}  "
        f"steps {evaluation.total_steps:>7}  seeds {seeds}  {evaluation.backend}  "
        f"{evaluation.wall_seconds:.1f} s  {evaluation.env_key}"
    )


def _diagnostic_lines(report: dict[str, Any] | None, indent: str) -> list[str]:
    if not report:
        return []
    return [
        f"{indent}line {item.get('line')}, col {item.get('column')}: "
        f"[{item.get('rule')}] {item.get('message')}"
        for item in report.get("diagnostics") or []
    ]


def render_program(program: Program, evaluations: Sequence[Evaluation]) -> str:
    second = program.second_parent_id
    lines = [
        f"program  {program.id}",
        f"run      {program.run_id}",
        f"origin   {program.origin}, generation {program.generation}",
        f"parent   {short_id(program.parent_id)}"
        + (f" (second parent {short_id(second)})" if second else ""),
        f"created  {_when(program.created_at)}",
        f"sha256   {program.sha256}",
    ]
    if program.note:
        lines.append(f"note     {program.note}")
    report = program.check_report
    if report is not None:
        verdict = "passed" if report.get("ok") else "failed"
        lines.append(f"check    {verdict}")
        lines.extend(_diagnostic_lines(report, "  "))
    lines.append(f"evaluations ({len(evaluations)})")
    for evaluation in evaluations:
        lines.append(_evaluation_line(evaluation))
        if evaluation.status == "rejected":
            lines.extend(_diagnostic_lines(evaluation.check_report, "    "))
        for episode in evaluation.episodes:
            if episode.get("error"):
                first = str(episode["error"]).strip().splitlines()[-1:] or [""]
                lines.append(f"    seed {episode.get('seed')}: {episode.get('status')}: {first[0]}")
    lines.append("source")
    lines.append(program.source.rstrip("\n"))
    return "\n".join(lines)


def _program_dict(program: Program) -> dict[str, Any]:
    return {
        "id": program.id,
        "run_id": program.run_id,
        "parent_id": program.parent_id,
        "second_parent_id": program.second_parent_id,
        "origin": program.origin,
        "generation": program.generation,
        "created_at": program.created_at,
        "sha256": program.sha256,
        "note": program.note,
        "check_report": program.check_report,
        "source": program.source,
    }


def _evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "id": evaluation.id,
        "status": evaluation.status,
        "mean_return": evaluation.mean_return,
        "total_steps": evaluation.total_steps,
        "game": evaluation.game,
        "env": evaluation.env,
        "env_key": evaluation.env_key,
        "seeds": evaluation.seeds,
        "episodes": evaluation.episodes,
        "backend": evaluation.backend,
        "wall_seconds": evaluation.wall_seconds,
        "cpu_seconds": evaluation.cpu_seconds,
        "peak_memory_mb": evaluation.peak_memory_mb,
        "created_at": evaluation.created_at,
    }


def export_policy(store: Store, best: ScoredProgram, path: Path) -> None:
    """Write the program as a standalone policy module with a header saying where it is from."""
    if store.path is not None:
        database = store.path.resolve()
        target = path.expanduser().resolve()
        if target in {database, Path(f"{database}-wal"), Path(f"{database}-shm")}:
            raise UserError(f"refusing to export over the database itself: {path}")
    program = store.get_program(best.program_id)
    run = store.get_run(program.run_id)
    evaluation = store.get_evaluation(best.evaluation_id) if best.evaluation_id else None
    seeds = ",".join(str(seed) for seed in evaluation.seeds) if evaluation else "-"
    header = [
        f"# evocade policy: program {program.id} of run {run.id} ({run.game})",
        f"# mean return {best.mean_return:+.2f} over seeds {seeds} ({best.status}, "
        f"{best.total_steps} steps)",
        f"# env {evaluation.env_key if evaluation else run.env}",
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
        if as_json:
            typer.echo(to_json([asdict(summary) for summary in summaries]))
        else:
            typer.echo(render_runs(summaries, store.location))


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
            data = _program_dict(found)
            data["evaluations"] = [_evaluation_dict(evaluation) for evaluation in evaluations]
            typer.echo(to_json(data))
        else:
            typer.echo(render_program(found, evaluations))


def lineage_command(
    program: ProgramArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """Show a program's ancestors (root first) and its descendants as a tree, with scores.

    Example: evocade lineage 1a2b3c4d --json
    """
    with opened_store(db) as store:
        lineage = store.lineage(store.resolve_program(program).id)
        if as_json:
            typer.echo(to_json(asdict(lineage)))
        else:
            typer.echo(render_lineage(lineage))


def diff_command(
    a: Annotated[str, typer.Argument(help="Old program (id prefix).")],
    b: Annotated[str, typer.Argument(help="New program (id prefix).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Print a unified diff from program A's source to program B's (nothing if equal).

    Example: evocade diff 1a2b3c4d 5e6f7a8b
    """
    with opened_store(db) as store:
        first, second = store.resolve_program(a), store.resolve_program(b)
        text = store.diff(first.id, second.id)
        if text:
            typer.echo(text, nl=False)


def best_command(
    run: RunArgument,
    db: DbOption = DEFAULT_DB,
    export: Annotated[
        Path | None,
        typer.Option("--export", metavar="FILE", help="Write the best policy to FILE."),
    ] = None,
) -> None:
    """Show a run's best program; with --export, write it as a standalone policy file.

    Best = highest mean return over an `ok` evaluation (a failed one only if no evaluation
    is ok), ties broken by fewer steps, then the older program.

    Example: evocade best 9f8e7d6c --export pong_policy.py
    """
    with opened_store(db) as store:
        found = store.resolve_run(run)
        best = store.best_program(found.id)
        if best is None:
            raise UserError(f"run {short_id(found.id)} has no evaluated program yet")
        typer.echo(
            f"best program {best.short_id} of run {short_id(found.id)} ({found.game}): "
            f"mean {best.mean_return:+.2f} ({best.status}, {best.total_steps} steps, "
            f"evaluation {short_id(best.evaluation_id)})"
        )
        if export is not None:
            export_policy(store, best, export)
            typer.echo(f"wrote {export}")


def revert_command(
    run: RunArgument,
    to: Annotated[str, typer.Option("--to", metavar="PROGRAM", help="Program to go back to.")],
    db: DbOption = DEFAULT_DB,
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
        typer.echo(
            f"run {short_id(found.id)}: head {short_id(previous)} -> {short_id(program.id)} "
            "(revert recorded; nothing deleted)"
        )


def history_command(
    run: RunArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """List a run's programs in creation order with their scores and the best so far.

    Example: evocade history 9f8e7d6c --json
    """
    with opened_store(db) as store:
        found = store.resolve_run(run)
        rows = store.history(found.id)
        if as_json:
            typer.echo(to_json([asdict(row) for row in rows]))
        else:
            typer.echo(render_history(rows, found.id))


COMMANDS = {
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
