"""Text and JSON for the storage commands: query results in, terminal-safe strings out.

Pure functions of what storage returns, so they are tested without a command line.
Everything read from the database is untrusted text (a program's source and note come from an
LLM, an episode's error from the policy): each field is made terminal-safe where it is put into
a line (`safe_line`, so it cannot start a line of its own) and every text output passes through
`safe_block` once more on its way out (`emit`). JSON output escapes every control character.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from engine.textsafe import safe_block, safe_line
from storage import short_id
from storage.models import Evaluation, Program
from storage.queries import (
    HistoryEvent,
    HistoryRow,
    Lineage,
    LineageNode,
    RunSummary,
    ScoredProgram,
)


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


def field(value: object) -> str:
    """A database value as one terminal-safe field."""
    return safe_line(value)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _score(mean_return: float | None, status: str | None) -> str:
    if status is None:
        return "not evaluated"
    if mean_return is None:
        return field(status)
    return f"{mean_return:+.2f} {field(status)}"


def _node_line(node: ScoredProgram) -> str:
    return (
        f"{field(node.short_id)}  gen {node.generation:<4} {field(node.origin):<8} "
        f"{_score(node.mean_return, node.status)}"
    )


def render_runs(
    summaries: Sequence[RunSummary], where: str, extras: Mapping[str, Mapping[str, Any]]
) -> str:
    """BEST is the training score; HELD-OUT the confirmed best's score on held-out seeds."""
    if not summaries:
        return f"no runs in {field(where)}"
    lines = [
        f"{'RUN':<8}  {'GAME':<14} {'STATUS':<11} {'PROGRAMS':>8} {'EVALS':>6} "
        f"{'BEST':>9} {'HELD-OUT':>9} {'ENV STEPS':>10}  {'HEAD':<8}  CREATED"
    ]
    for run in summaries:
        best = f"{run.best_mean_return:+.2f}" if run.best_mean_return is not None else "-"
        extra = extras.get(run.run_id, {})
        status = "interrupted" if extra.get("interrupted") else run.status
        held = extra.get("best_holdout_mean")
        held_text = f"{held:+.2f}" if held is not None else "-"
        lines.append(
            f"{field(run.short_id):<8}  {field(run.game):<14} {field(status):<11} "
            f"{run.programs:>8} {run.evaluations:>6} {best:>9} {held_text:>9} "
            f"{extra.get('env_steps', 0):>10}  "
            f"{field(short_id(run.head_program_id)):<8}  {_when(run.created_at)}"
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
        f"lineage of program {field(program.short_id)} (run {field(short_id(program.run_id))}): "
        f"{len(lineage.ancestors)} ancestors, {len(lineage.descendants)} descendants"
    ]
    for node in reversed(lineage.ancestors):
        lines.append(f"   {_node_line(node)}")
    lines.append(f"*  {_node_line(program)}")
    lines.extend(render_descendants(program.program_id, lineage.descendants))
    return "\n".join(lines)


HISTORY_HEADER = (
    f"{'#':>4}  {'PROGRAM':<8}  {'PARENT':<8}  {'GEN':>4}  {'ISLAND':>6}  {'ORIGIN':<8}  "
    f"{'STATUS':<14}  {'MEAN':>9}  {'BEST SO FAR':>11}"
)


def _history_event_line(event: HistoryEvent) -> str:
    if event.kind == "no_program":
        iteration = f"iteration {event.iteration + 1}" if event.iteration is not None else "-"
        return (
            f"{'-':>4}  {'(none)':<8}  {'':<8}  {'':>4}  {'':>6}  {'':<8}  "
            f"{field(event.status or 'no_program'):<14}  {iteration}: {field(event.message)}"
        )
    return (
        f"{'-':>4}  {field(event.kind):<8}  head {field(short_id(event.from_program_id))} -> "
        f"{field(short_id(event.program_id))}: {field(event.message)}"
    )


def render_history(
    entries: Sequence[HistoryRow | HistoryEvent],
    run_id: str,
    islands: Mapping[str, int | None] | None = None,
) -> str:
    """Programs numbered in creation order; failed iterations without a program and head
    moves (revert, rollback) as unnumbered lines where they happened."""
    if not entries:
        return f"run {field(short_id(run_id))} has no programs yet"
    lines = [HISTORY_HEADER]
    number = 0
    for entry in entries:
        if isinstance(entry, HistoryEvent):
            lines.append(_history_event_line(entry))
            continue
        number += 1
        mean = f"{entry.mean_return:+.2f}" if entry.mean_return is not None else "-"
        best = f"{entry.best_so_far:+.2f}" if entry.best_so_far is not None else "-"
        island = (islands or {}).get(entry.program_id)
        lines.append(
            f"{number:>4}  {field(entry.short_id):<8}  {field(short_id(entry.parent_id)):<8}  "
            f"{entry.generation:>4}  {'-' if island is None else island:>6}  "
            f"{field(entry.origin):<8}  "
            f"{field(entry.status or 'not evaluated'):<14}  {mean:>9}  {best:>11}"
        )
    return "\n".join(lines)


def history_json(
    entries: Sequence[HistoryRow | HistoryEvent], islands: Mapping[str, int | None] | None = None
) -> list[dict[str, Any]]:
    """Each entry as a dict with `kind`: "program" for a program row (with its `island`),
    else the event's kind."""
    out = []
    for entry in entries:
        data = asdict(entry)
        if isinstance(entry, HistoryRow):
            data = {"kind": "program", **data, "island": (islands or {}).get(entry.program_id)}
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
    seeds = ",".join(field(seed) for seed in evaluation.seeds) or "-"
    return (
        f"  {field(short_id(evaluation.id))}  {field(evaluation.status):<14} mean {mean:>8}  "
        f"steps {evaluation.total_steps:>7}  seeds {seeds}  {field(evaluation.backend)}  "
        f"{evaluation.wall_seconds:.1f} s  {field(evaluation.env_key)}"
    )


def _diagnostic_lines(report: dict[str, Any] | None, where: str, indent: str) -> list[str]:
    """`where:line:col: rule: message`, as `evocade check` prints them."""
    if not report or not isinstance(report.get("diagnostics"), list):
        return []
    return [
        f"{indent}{field(where)}:{field(item.get('line'))}:{field(item.get('column'))}: "
        f"{field(item.get('rule'))}: {field(item.get('message'))}"
        for item in report["diagnostics"]
        if isinstance(item, dict)
    ]


def render_program(program: Program, evaluations: Sequence[Evaluation]) -> str:
    second = program.second_parent_id
    where = short_id(program.id)
    lines = [
        f"program  {field(program.id)}",
        f"run      {field(program.run_id)}",
        f"origin   {field(program.origin)}, generation {program.generation}",
        f"parent   {field(short_id(program.parent_id))}"
        + (f" (second parent {field(short_id(second))})" if second else ""),
        f"created  {_when(program.created_at)}",
        f"sha256   {field(program.sha256)}",
    ]
    if program.note:
        lines.append(f"note     {field(program.note)}")
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
                    f"    seed {field(episode.get('seed'))}: {field(episode.get('status'))}: "
                    f"{field(error_summary(str(episode['error'])))}"
                )
    lines.append("source")
    lines.append(safe_block(program.source.rstrip("\n")))
    return "\n".join(lines)


def program_dict(program: Program) -> dict[str, Any]:
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


def evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
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
