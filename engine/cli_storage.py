"""The storage commands: runs, show, lineage, diff, best, revert, history.

Each command parses its arguments, asks `storage.Store`, and prints; the `render_*` functions
turn query results into text and can be tested without a command line. Programs and runs are
named by any unique prefix of their id (the first 8 characters are shown everywhere).

Everything read from the database is untrusted text (a program's source and note come from an
LLM, an episode's error from the policy): each field is made terminal-safe where it is put into
a line (`safe_line`, so it cannot start a line of its own) and every text output passes through
`safe_block` once more on its way out. JSON output escapes every control character.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.db_option import DEFAULT_DB, DbOption, opened_store
from engine.errors import UserError
from engine.textsafe import safe_block, safe_line
from storage import Store, short_id
from storage.models import Evaluation, Program
from storage.queries import (
    HistoryEvent,
    HistoryRow,
    Lineage,
    LineageNode,
    RunSummary,
    ScoredProgram,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ProgramArgument = Annotated[str, typer.Argument(help="Program id or a unique prefix of it.")]
RunArgument = Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")]


# -- rendering -------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(value: Any) -> str:
    """JSON with `ensure_ascii`: every control character and non-ASCII character escaped."""
    return json.dumps(value, indent=2, default=_json_default, ensure_ascii=True)


def emit(text: str) -> None:
    """Print a command's text output, terminal-safe whatever got into it."""
    if text:
        print(safe_block(text))


def _s(value: object) -> str:
    """A database value as one terminal-safe field."""
    return safe_line(value)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _score(mean_return: float | None, status: str | None) -> str:
    if status is None:
        return "not evaluated"
    if mean_return is None:
        return _s(status)
    return f"{mean_return:+.2f} {_s(status)}"


def _node_line(node: ScoredProgram) -> str:
    return (
        f"{_s(node.short_id)}  gen {node.generation:<4} {_s(node.origin):<8} "
        f"{_score(node.mean_return, node.status)}"
    )


def render_runs(summaries: Sequence[RunSummary], where: str) -> str:
    if not summaries:
        return f"no runs in {_s(where)}"
    lines = [
        f"{'RUN':<8}  {'GAME':<14} {'STATUS':<9} {'PROGRAMS':>8} {'EVALS':>6} "
        f"{'BEST':>9}  {'HEAD':<8}  CREATED"
    ]
    for run in summaries:
        best = f"{run.best_mean_return:+.2f}" if run.best_mean_return is not None else "-"
        lines.append(
            f"{_s(run.short_id):<8}  {_s(run.game):<14} {_s(run.status):<9} {run.programs:>8} "
            f"{run.evaluations:>6} {best:>9}  {_s(short_id(run.head_program_id)):<8}  "
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
        f"lineage of program {_s(program.short_id)} (run {_s(short_id(program.run_id))}): "
        f"{len(lineage.ancestors)} ancestors, {len(lineage.descendants)} descendants"
    ]
    for node in reversed(lineage.ancestors):
        lines.append(f"   {_node_line(node)}")
    lines.append(f"*  {_node_line(program)}")
    lines.extend(render_descendants(program.program_id, lineage.descendants))
    return "\n".join(lines)


HISTORY_HEADER = (
    f"{'#':>4}  {'PROGRAM':<8}  {'PARENT':<8}  {'GEN':>4}  {'ORIGIN':<8}  "
    f"{'STATUS':<14}  {'MEAN':>9}  {'BEST SO FAR':>11}"
)


def _history_event_line(event: HistoryEvent) -> str:
    if event.kind == "no_program":
        iteration = f"iteration {event.iteration + 1}" if event.iteration is not None else "-"
        return (
            f"{'-':>4}  {'(none)':<8}  {'':<8}  {'':>4}  {'':<8}  "
            f"{_s(event.status or 'no_program'):<14}  {iteration}: {_s(event.message)}"
        )
    return (
        f"{'-':>4}  {_s(event.kind):<8}  head {_s(short_id(event.from_program_id))} -> "
        f"{_s(short_id(event.program_id))}: {_s(event.message)}"
    )


def render_history(entries: Sequence[HistoryRow | HistoryEvent], run_id: str) -> str:
    """Programs numbered in creation order; failed iterations without a program and head
    moves (revert, rollback) as unnumbered lines where they happened."""
    if not entries:
        return f"run {_s(short_id(run_id))} has no programs yet"
    lines = [HISTORY_HEADER]
    number = 0
    for entry in entries:
        if isinstance(entry, HistoryEvent):
            lines.append(_history_event_line(entry))
            continue
        number += 1
        mean = f"{entry.mean_return:+.2f}" if entry.mean_return is not None else "-"
        best = f"{entry.best_so_far:+.2f}" if entry.best_so_far is not None else "-"
        lines.append(
            f"{number:>4}  {_s(entry.short_id):<8}  {_s(short_id(entry.parent_id)):<8}  "
            f"{entry.generation:>4}  {_s(entry.origin):<8}  "
            f"{_s(entry.status or 'not evaluated'):<14}  {mean:>9}  {best:>11}"
        )
    return "\n".join(lines)


def history_json(entries: Sequence[HistoryRow | HistoryEvent]) -> list[dict[str, Any]]:
    """Each entry as a dict with `kind`: "program" for a program row, else the event's kind."""
    out = []
    for entry in entries:
        data = asdict(entry)
        if isinstance(entry, HistoryRow):
            data = {"kind": "program", **data}
        out.append(data)
    return out


def error_summary(error: str) -> str:
    """An episode's error on one line: the exception line of a traceback, with the harness's
    "(at step N)" note when there is one, e.g. "RuntimeError: oops (at step 12)"."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    at_step = [line for line in lines if line.startswith("(at step")]
    rest = [line for line in lines if not line.startswith("(at step")]
    summary = rest[-1] if rest else ""
    return f"{summary} {at_step[-1]}".strip() if at_step else summary


def _evaluation_line(evaluation: Evaluation) -> str:
    mean = f"{evaluation.mean_return:+.2f}" if evaluation.mean_return is not None else "-"
    seeds = ",".join(_s(seed) for seed in evaluation.seeds) or "-"
    return (
        f"  {_s(short_id(evaluation.id))}  {_s(evaluation.status):<14} mean {mean:>8}  "
        f"steps {evaluation.total_steps:>7}  seeds {seeds}  {_s(evaluation.backend)}  "
        f"{evaluation.wall_seconds:.1f} s  {_s(evaluation.env_key)}"
    )


def _diagnostic_lines(report: dict[str, Any] | None, where: str, indent: str) -> list[str]:
    """`where:line:col: rule: message`, as `evocade check` prints them."""
    if not report or not isinstance(report.get("diagnostics"), list):
        return []
    return [
        f"{indent}{_s(where)}:{_s(item.get('line'))}:{_s(item.get('column'))}: "
        f"{_s(item.get('rule'))}: {_s(item.get('message'))}"
        for item in report["diagnostics"]
        if isinstance(item, dict)
    ]


def render_program(program: Program, evaluations: Sequence[Evaluation]) -> str:
    second = program.second_parent_id
    where = short_id(program.id)
    lines = [
        f"program  {_s(program.id)}",
        f"run      {_s(program.run_id)}",
        f"origin   {_s(program.origin)}, generation {program.generation}",
        f"parent   {_s(short_id(program.parent_id))}"
        + (f" (second parent {_s(short_id(second))})" if second else ""),
        f"created  {_when(program.created_at)}",
        f"sha256   {_s(program.sha256)}",
    ]
    if program.note:
        lines.append(f"note     {_s(program.note)}")
    report = program.check_report if isinstance(program.check_report, dict) else None
    if report is not None:
        verdict = "passed" if report.get("ok") else "failed"
        lines.append(f"check    {verdict}")
        lines.extend(_diagnostic_lines(report, where, "  "))
    lines.append(f"evaluations ({len(evaluations)})")
    for evaluation in evaluations:
        lines.append(_evaluation_line(evaluation))
        if evaluation.status == "rejected":
            lines.extend(_diagnostic_lines(evaluation.check_report, where, "    "))
        for episode in evaluation.episodes:
            if isinstance(episode, dict) and episode.get("error"):
                lines.append(
                    f"    seed {_s(episode.get('seed'))}: {_s(episode.get('status'))}: "
                    f"{_s(error_summary(str(episode['error'])))}"
                )
    lines.append("source")
    lines.append(safe_block(program.source.rstrip("\n")))
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
    seeds = ",".join(_s(seed) for seed in evaluation.seeds) if evaluation else "-"
    header = [
        f"# evocade policy: program {_s(program.id)} of run {_s(run.id)} ({_s(run.game)})",
        f"# mean return {best.mean_return:+.2f} over seeds {seeds} ({_s(best.status)}, "
        f"{best.total_steps} steps)",
        f"# env {_s(evaluation.env_key if evaluation else run.env)}",
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
            print(to_json([asdict(summary) for summary in summaries]))
        else:
            emit(render_runs(summaries, store.location))


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


def _best_dict(best: ScoredProgram, run_id: str, game: str) -> dict[str, Any]:
    return {"run_id": run_id, "game": game, **asdict(best)}


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

    Best = highest mean return over an `ok` evaluation (a failed one only if no evaluation
    is ok), ties broken by fewer steps, then the older program. --export never overwrites a
    file unless --force is given.

    Example: evocade best 9f8e7d6c --export pong_policy.py
    """
    if force and export is None:
        raise UserError("--force only applies with --export FILE")
    with opened_store(db) as store:
        found = store.resolve_run(run)
        best = store.best_program(found.id)
        if best is None:
            raise UserError(f"run {short_id(found.id)} has no evaluated program yet")
        if export is not None:
            export_policy(store, best, export, force=force)
        if as_json:
            data = _best_dict(best, found.id, found.game)
            data["exported_to"] = str(export) if export is not None else None
            print(to_json(data))
            return
        emit(
            f"best program {_s(best.short_id)} of run {_s(short_id(found.id))} "
            f"({_s(found.game)}): mean {best.mean_return:+.2f} ({_s(best.status)}, "
            f"{best.total_steps} steps, evaluation {_s(short_id(best.evaluation_id))})"
        )
        if export is not None:
            emit(f"wrote {_s(export)}")


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
            f"run {_s(short_id(found.id))}: head {_s(short_id(previous))} -> "
            f"{_s(short_id(program.id))} (revert recorded; nothing deleted)"
        )


def history_command(
    run: RunArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """List a run's programs in creation order with their scores and the best so far, with
    the iterations that produced no program and every revert or rollback where they happened.

    Example: evocade history 9f8e7d6c --json
    """
    with opened_store(db) as store:
        found = store.resolve_run(run)
        entries = store.history_with_events(found.id)
        if as_json:
            print(to_json(history_json(entries)))
        else:
            emit(render_history(entries, found.id))


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
