"""`evocade log RUN`: every iteration of a run in order, failed ones included, and why.

For each iteration: its status, the program it made (or that it made none), the checker's
diagnostics or the episodes' errors, the feedback the proposer was sent, and each LLM call's
tokens, cost and error. It is read from what storage keeps (the loop's `iteration` events,
programs, evaluations, `llm_call` rows) and tolerates events written by other versions of the
loop: a field that is missing is shown as "-".

Which LLM calls belong to an iteration: those the event lists (`data["llm_calls"]`), or else
those recorded after the previous iteration's event and up to its own (the loop records an
iteration's calls just before its event). The feedback sent: the event's `data["feedback"]`,
or else the "Feedback" section of the iteration's last LLM prompt; the offline mutation
proposer is sent none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Annotated, Any

import typer

from engine.cli_storage_render import error_summary
from engine.db_option import DEFAULT_DB, DbOption, opened_store
from engine.formatting import number
from engine.textsafe import indented, safe_block, safe_line
from storage import NotFoundError, Store, short_id
from storage.models import Event, LlmCall, Program

FEEDBACK_HEADING = "## Feedback on the current program"
FEEDBACK_LINES_SHOWN = 12


@dataclass
class LlmCallEntry:
    id: str
    model: str
    tokens_in: int | None
    tokens_out: int | None
    cost: float | None
    latency_seconds: float | None
    error: str | None


@dataclass
class EvaluationEntry:
    id: str
    status: str
    mean_return: float | None
    env_key: str
    seeds: list[Any]
    errors: list[str]  # "seed S status: last line of the error", one per failed episode


@dataclass
class IterationEntry:
    """One proposal (or the seed program, with `iteration` None and kind "seed")."""

    kind: str  # "iteration" | "seed"
    created_at: datetime
    iteration: int | None  # 0-based, as the loop counts
    status: str | None
    program_id: str | None
    parent_id: str | None
    mean_return: float | None
    note: str | None
    diagnostics: list[str] = field(default_factory=list)
    evaluations: list[EvaluationEntry] = field(default_factory=list)
    llm_calls: list[LlmCallEntry] = field(default_factory=list)
    feedback: str | None = None


@dataclass
class RunEventEntry:
    """Anything else that happened to the run (started, resumed, budget hit, reverted...)."""

    kind: str
    created_at: datetime
    message: str


LogEntry = IterationEntry | RunEventEntry


# -- reading -----------------------------------------------------------------------------------


def _data(event: Event) -> dict[str, Any]:
    return event.data if isinstance(event.data, dict) else {}


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def feedback_from_prompt(prompt: str) -> str | None:
    """The feedback section of a prompt built by `engine.prompts` (None if it has none)."""
    start = prompt.find(FEEDBACK_HEADING)
    if start < 0:
        return None
    body = prompt[start + len(FEEDBACK_HEADING) :]
    end = body.find("\n## ")
    return (body if end < 0 else body[:end]).strip("\n") or None


def _diagnostics(program: Program) -> list[str]:
    report = program.check_report if isinstance(program.check_report, dict) else {}
    items = report.get("diagnostics") if isinstance(report.get("diagnostics"), list) else []
    where = short_id(program.id)
    return [
        f"{where}:{item.get('line', '-')}:{item.get('column', '-')}: "
        f"{item.get('rule', '-')}: {item.get('message', '-')}"
        for item in items or []
        if isinstance(item, dict)
    ]


def _evaluation_entries(store: Store, program_id: str) -> tuple[list[EvaluationEntry], list[str]]:
    """The program's evaluations, and the checker diagnostics of a rejected one."""
    entries, diagnostics = [], []
    for evaluation in store.evaluations(program_id):
        errors = []
        for episode in evaluation.episodes or []:
            if not isinstance(episode, dict) or episode.get("status") == "ok":
                continue
            summary = error_summary(str(episode.get("error") or "")) or "-"
            errors.append(f"seed {episode.get('seed', '-')} {episode.get('status')}: {summary}")
        entries.append(
            EvaluationEntry(
                evaluation.id,
                evaluation.status,
                evaluation.mean_return,
                evaluation.env_key,
                list(evaluation.seeds or []),
                errors,
            )
        )
        report = evaluation.check_report if isinstance(evaluation.check_report, dict) else {}
        for item in report.get("diagnostics") or []:
            if isinstance(item, dict):
                diagnostics.append(
                    f"{short_id(program_id)}:{item.get('line', '-')}:{item.get('column', '-')}: "
                    f"{item.get('rule', '-')}: {item.get('message', '-')}"
                )
    return entries, diagnostics


def _call_entry(call: LlmCall) -> LlmCallEntry:
    return LlmCallEntry(
        call.id,
        call.model,
        call.tokens_in,
        call.tokens_out,
        call.cost,
        call.latency_seconds,
        call.error,
    )


def _program_details(store: Store, entry: IterationEntry) -> None:
    if entry.program_id is None:
        return
    try:
        program = store.get_program(entry.program_id)
    except NotFoundError:  # an event that names a program this database lacks
        entry.diagnostics.append(f"program {short_id(entry.program_id)} is not in the database")
        return
    entry.parent_id = entry.parent_id or program.parent_id
    entry.evaluations, rejected = _evaluation_entries(store, program.id)
    entry.diagnostics = _diagnostics(program) or rejected
    if entry.note is None:
        entry.note = program.note


def run_log(store: Store, run_id: str, last: int | None = None) -> list[LogEntry]:
    """The run's log, oldest first; with `last`, only the last that many iterations (and the
    run events among them)."""
    events = store.events(run_id)
    calls = store.llm_calls(run_id)
    by_id = {call.id: call for call in calls}
    entries: list[LogEntry] = _seed_entries(store, run_id)
    previous_at: datetime | None = None
    for event in events:
        if event.kind != "iteration":
            entries.append(RunEventEntry(event.kind, event.created_at, event.message or ""))
            continue
        entries.append(_iteration_entry(store, event, calls, by_id, previous_at))
        previous_at = event.created_at
    entries.sort(key=lambda entry: entry.created_at)
    if last is not None:
        iterations = [e for e in entries if isinstance(e, IterationEntry)]
        if last == 0:
            return []
        if len(iterations) > last:
            cut = iterations[-last].created_at
            entries = [e for e in entries if e.created_at >= cut]
    return entries


def _seed_entries(store: Store, run_id: str) -> list[LogEntry]:
    """The run's starting programs (origin `seed`), which no iteration event records."""
    entries: list[LogEntry] = []
    for program in store.history(run_id):
        if program.origin == "seed":
            seed = IterationEntry(
                "seed",
                program.created_at,
                None,
                program.status,
                program.program_id,
                None,
                program.mean_return,
                None,
            )
            _program_details(store, seed)
            entries.append(seed)
    return entries


def _iteration_entry(
    store: Store,
    event: Event,
    calls: list[LlmCall],
    by_id: dict[str, LlmCall],
    previous_at: datetime | None,
) -> IterationEntry:
    """One `iteration` event with its LLM calls (those it lists; for events that list none,
    those made since the previous iteration) and the feedback its prompt carried."""
    data = _data(event)
    entry = IterationEntry(
        "iteration",
        event.created_at,
        _opt_int(data.get("iteration")),
        _opt_str(data.get("status")),
        _opt_str(data.get("program")),
        _opt_str(data.get("parent")),
        _opt_float(data.get("mean_return")),
        _opt_str(data.get("note")),
    )
    listed = data.get("llm_calls")
    if isinstance(listed, list):
        mine = [by_id[i] for i in listed if isinstance(i, str) and i in by_id]
    else:
        mine = [
            call
            for call in calls
            if (previous_at is None or call.created_at > previous_at)
            and call.created_at <= event.created_at
        ]
    entry.llm_calls = [_call_entry(call) for call in mine]
    feedback = _opt_str(data.get("feedback"))
    if feedback is None and mine:
        feedback = feedback_from_prompt(mine[-1].prompt)
    entry.feedback = feedback
    _program_details(store, entry)
    return entry


# -- rendering ---------------------------------------------------------------------------------


def _call_line(call: LlmCallEntry) -> str:
    cost = "-" if call.cost is None else f"${call.cost:.4f}"
    latency = "-" if call.latency_seconds is None else f"{call.latency_seconds:.1f} s"
    return (
        f"  llm {safe_line(call.model)}: tokens {number(call.tokens_in, 'd')} in / "
        f"{number(call.tokens_out, 'd')} out, cost {cost}, {latency}, "
        f"error {safe_line(call.error) if call.error else '-'}"
    )


def _feedback_lines(feedback: str | None, full: bool) -> list[str]:
    if not feedback:
        return ["  feedback sent: -"]
    lines = safe_block(feedback).split("\n")
    shown = lines if full else lines[:FEEDBACK_LINES_SHOWN]
    out = ["  feedback sent:", indented("\n".join(shown), "    | ")]
    if len(shown) < len(lines):
        out.append(f"    ... {len(lines) - len(shown)} more lines (--full shows them)")
    return out


def _iteration_lines(entry: IterationEntry, full: bool) -> list[str]:
    if entry.kind == "seed":
        head = "seed        "
    else:
        counted = entry.iteration + 1 if entry.iteration is not None else None
        head = f"iteration {number(counted, 'd'):<3}"
    program = (
        f"program {safe_line(short_id(entry.program_id))}"
        + (f" (parent {safe_line(short_id(entry.parent_id))})" if entry.parent_id else "")
        if entry.program_id
        else "no program"
    )
    lines = [
        f"{head} {safe_line(entry.status or '-'):<14} {program}  "
        f"mean {number(entry.mean_return, '+.2f')}"
    ]
    if entry.note:
        lines.append(f"  note: {safe_line(entry.note)}")
    for diagnostic in entry.diagnostics:
        lines.append(f"  checker: {safe_line(diagnostic)}")
    for evaluation in entry.evaluations:
        seeds = ",".join(safe_line(seed) for seed in evaluation.seeds) or "-"
        lines.append(
            f"  evaluation {safe_line(short_id(evaluation.id))} {safe_line(evaluation.status)} "
            f"mean {number(evaluation.mean_return, '+.2f')} seeds {seeds} "
            f"[{safe_line(evaluation.env_key)}]"
        )
        lines.extend(f"    {safe_line(error)}" for error in evaluation.errors)
    if entry.kind == "iteration":
        lines.extend(_call_line(call) for call in entry.llm_calls)
        if not entry.llm_calls:
            lines.append("  llm: - (no LLM call recorded)")
        lines.extend(_feedback_lines(entry.feedback, full))
    return lines


def render_log(entries: list[LogEntry], run_id: str, game: str, status: str, full: bool) -> str:
    iterations = [e for e in entries if isinstance(e, IterationEntry) and e.kind == "iteration"]
    failed = [e for e in iterations if e.status != "ok"]
    lines = [
        f"run {safe_line(short_id(run_id))} ({safe_line(game)}, {safe_line(status)}): "
        f"{len(iterations)} iterations shown, {len(failed)} not ok"
    ]
    for entry in entries:
        if isinstance(entry, RunEventEntry):
            lines.append(f"-- {safe_line(entry.kind)}: {safe_line(entry.message)}")
        else:
            lines.extend(_iteration_lines(entry, full))
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def log_json(entries: list[LogEntry], run_id: str) -> str:
    data = [
        {"type": "event" if isinstance(e, RunEventEntry) else e.kind, **asdict(e)} for e in entries
    ]
    return json.dumps(
        {"run_id": run_id, "entries": data}, indent=2, default=_json_default, ensure_ascii=True
    )


# -- the command -------------------------------------------------------------------------------


def log_command(
    run: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    db: DbOption = DEFAULT_DB,
    last: Annotated[
        int | None, typer.Option("--last", min=0, help="Only the last N iterations.")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Show the whole feedback sent.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show every iteration of a run in order, failed ones included, and why.

    For each: its status, the checker's diagnostics or the episodes' errors, the feedback
    sent, and each LLM call's tokens, cost and error.

    Example: evocade log 9f8e7d6c --last 5
    """
    with opened_store(db) as store:
        found = store.resolve_run(run)
        entries = run_log(store, found.id, last)
        if as_json:
            print(log_json(entries, found.id))
        else:
            print(safe_block(render_log(entries, found.id, found.game, found.status, full)))


def register(app: typer.Typer) -> None:
    app.command("log")(log_command)
