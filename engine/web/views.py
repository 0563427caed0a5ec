"""What each page shows, gathered from a read-only `Store` into plain dicts for the templates.

Only read methods of the store are called here (and the store itself is opened read-only).
Untrusted text (sources, LLM prompts and replies, errors, notes) is passed on as plain strings;
the templates escape it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.series import RunSeries, load_series
from engine.web import svg
from storage import Store, short_id
from storage.models import Evaluation, Program
from storage.queries import diff_sources

NOTABLE_EVENTS = ("rollback", "revert", "budget_hit", "crash_recovery", "run_failed")
MAX_TREE_NODES = 3000  # beyond this the lineage SVG would be too large to be useful


def _score(mean: float | None) -> str:
    return f"{mean:+.2f}" if mean is not None else "-"


def runs_page(store: Store) -> dict[str, Any]:
    rows = []
    for summary in store.runs():
        series = load_series(store, summary.run_id)
        rows.append(
            {
                "id": summary.run_id,
                "short": summary.short_id,
                "game": summary.game,
                "status": summary.status,
                "programs": summary.programs,
                "evaluations": summary.evaluations,
                "best": _score(summary.best_mean_return),
                "created": summary.created_at.strftime("%Y-%m-%d %H:%M"),
                "spark": svg.sparkline(series),
            }
        )
    return {"runs": rows, "where": store.location}


def _tree(store: Store, run_id: str, head_id: str | None, series: RunSeries) -> Any:
    history = store.history(run_id)
    if len(history) > MAX_TREE_NODES:
        return None
    scores = {point.program_id: point.score for point in series.points}
    nodes = [
        svg.TreeNode(
            row.program_id,
            row.parent_id,
            f"{row.short_id} {_score(scores.get(row.program_id, row.mean_return))}",
            row.status,
            is_head=row.program_id == head_id,
        )
        for row in history
    ]
    return svg.lineage_tree(nodes)


def run_page(store: Store, run_prefix: str) -> dict[str, Any]:
    run = store.resolve_run(run_prefix)
    series = load_series(store, run.id)
    events = store.events(run.id)
    iterations = [event for event in events if event.kind == "iteration"]
    crashed_iterations = [
        event for event in iterations if (event.data or {}).get("status") == "crashed"
    ]
    shown = [event for event in events if event.kind != "iteration"] + crashed_iterations
    shown.sort(key=lambda event: event.id)
    history = store.history(run.id)
    points = {point.program_id: point for point in series.points}
    islands = {pid: island for pid, island, _, _ in store.numbered_programs(run.id)}
    return {
        "run": run,
        "env": ", ".join(f"{key}={value}" for key, value in sorted((run.env or {}).items())),
        "short": short_id(run.id),
        "series": series,
        "curve": svg.score_curve(series),
        "tree": _tree(store, run.id, run.head_program_id, series),
        "tree_limit": MAX_TREE_NODES,
        "events": [
            {
                "kind": event.kind,
                "message": event.message,
                "when": event.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "notable": event.kind in NOTABLE_EVENTS
                or (event.data or {}).get("status") == "crashed",
            }
            for event in shown
        ],
        "iterations": len(iterations),
        "history": [
            {
                "number": number,
                "id": row.program_id,
                "short": row.short_id,
                "parent": short_id(row.parent_id),
                "origin": row.origin,
                "status": row.status or "not evaluated",
                "score": _score(points[row.program_id].score) if row.program_id in points else "-",
                "best": _score(points[row.program_id].best_so_far)
                if row.program_id in points
                else "-",
                "heldout": _score(points[row.program_id].heldout)
                if row.program_id in points
                else "-",
                "island": islands.get(row.program_id),
            }
            for number, row in enumerate(history)
        ],
        "best": series.best,
        "heldout_best": series.heldout_best,
        "has_islands": any(island for island in islands.values()),
    }


@dataclass(frozen=True)
class DiffLine:
    text: str
    kind: str  # "add", "del", "hunk", "head", ""


def _diff(parent: Program | None, program: Program) -> list[DiffLine] | None:
    if parent is None:
        return None
    lines = []
    text = diff_sources(parent.id, parent.source, program.id, program.source)
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = ""
        lines.append(DiffLine(line, kind))
    return lines


def _episodes(store: Store, evaluation: Evaluation) -> list[dict[str, Any]]:
    stored = {
        episode: (size, truncated) for episode, size, truncated in store.trace_sizes(evaluation.id)
    }
    rows = []
    for index, episode in enumerate(evaluation.episodes or []):
        trace = stored.get(index)
        rows.append(
            {
                "index": index,
                "seed": episode.get("seed"),
                "status": episode.get("status"),
                "return": f"{float(episode.get('return', 0.0)):g}",
                "length": episode.get("length"),
                "error": (episode.get("error") or "").strip(),
                "output": (episode.get("output") or "").strip(),
                "trace": trace is not None,
                "trace_bytes": trace[0] if trace else 0,
                "trace_cut": bool(trace and trace[1]),
            }
        )
    return rows


def _llm_call(call: Any) -> dict[str, Any]:
    return {
        "id": short_id(call.id),
        "model": call.model,
        "prompt": call.prompt,
        "response": call.response,
        "tokens_in": call.tokens_in,
        "tokens_out": call.tokens_out,
        "cost": call.cost,
        "latency": call.latency_seconds,
        "error": call.error,
        "when": call.created_at.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _replay_choice(
    program: Program, evaluations: list[Evaluation], asked: str | None
) -> tuple[str, int] | None:
    """(evaluation id, episode index) from `?replay=EVALUATION:EPISODE`, or None when not
    asked; NotFoundError when it names no episode of this program (a 404, not a guess)."""
    if asked is None:
        return None
    from storage import NotFoundError

    evaluation_id, _, episode = asked.partition(":")
    found = next((e for e in evaluations if e.id == evaluation_id), None)
    if found is None or not episode.isdigit() or int(episode) >= len(found.episodes or []):
        raise NotFoundError(
            f"program {short_id(program.id)} has no episode {asked!r} to replay "
            "(expected ?replay=EVALUATION_ID:EPISODE_INDEX)"
        )
    return found.id, int(episode)


def program_page(store: Store, program_prefix: str, replay: str | None = None) -> dict[str, Any]:
    """The program page; `replay` ("EVALUATION_ID:EPISODE") embeds that episode's replay."""
    program = store.resolve_program(program_prefix)
    run = store.get_run(program.run_id)
    parent = store.get_program(program.parent_id) if program.parent_id else None
    evaluations = store.evaluations(program.id)
    produced, built_on = store.program_llm_calls(program.id)
    chosen = _replay_choice(program, evaluations, replay)
    proposer = str((run.config or {}).get("proposer", "unknown"))
    return {
        "program": program,
        "short": short_id(program.id),
        "run_short": short_id(run.id),
        "run": run,
        "parent_short": short_id(program.parent_id),
        "diff": _diff(parent, program),
        "evaluations": [
            {
                "id": evaluation.id,
                "short": short_id(evaluation.id),
                "status": evaluation.status,
                "mean": _score(evaluation.mean_return),
                "steps": evaluation.total_steps,
                "seeds": ",".join(str(seed) for seed in evaluation.seeds) or "-",
                "env": evaluation.env_key,
                "backend": evaluation.backend,
                "wall": f"{evaluation.wall_seconds:.1f}",
                "check": evaluation.check_report,
                "episodes": _episodes(store, evaluation),
            }
            for evaluation in evaluations
        ],
        "replay": chosen,
        "proposer": proposer,
        "produced_by": [_llm_call(call) for call in produced],
        "feedback_calls": [_llm_call(call) for call in built_on],
    }


def episode_page(store: Store, evaluation_prefix: str, index: int) -> dict[str, Any]:
    evaluation = store.resolve_evaluation(evaluation_prefix)
    episodes = _episodes(store, evaluation)
    if not 0 <= index < len(episodes):
        from storage import NotFoundError

        raise NotFoundError(
            f"evaluation {short_id(evaluation.id)} has no episode {index} (it has {len(episodes)})"
        )
    return {
        "evaluation": evaluation,
        "short": short_id(evaluation.id),
        "program_short": short_id(evaluation.program_id),
        "episode": episodes[index],
    }
