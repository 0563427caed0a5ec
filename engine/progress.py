"""Progress of a run: a live rich table on a terminal, one plain line per iteration otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from engine.loop import IterationReport, LoopState


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


class LineReporter:
    """For logs and pipes: one self-contained line per iteration, flushed at once."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __enter__(self) -> LineReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def iteration(self, report: IterationReport, state: LoopState) -> None:
        program = report.program_id[:8] if report.program_id else "-"
        print(
            f"iter {report.iteration + 1:>4} program {program} status {report.status:<14} "
            f"mean {_fmt(report.mean_return):>8} best {_fmt(report.best_mean):>8} "
            f"env_steps {state.env_steps} tokens {state.tokens} | {report.note[:80]}",
            file=self.stream,
            flush=True,
        )

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class LiveReporter:
    """For a terminal: a table of the run's state, redrawn after every iteration."""

    def __init__(self, total_iterations: int) -> None:
        self.console = Console(stderr=True)
        self.total = total_iterations
        self.recent: list[IterationReport] = []
        self.state: LoopState | None = None
        self.started = time.monotonic()
        self.live = Live(self._render(), console=self.console, refresh_per_second=2)

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def _render(self) -> Table:
        state = self.state
        last = self.recent[-1] if self.recent else None
        table = Table(title="evocade run", show_header=False, expand=False)
        table.add_row("iteration", f"{state.iteration if state else 0} / {self.total}")
        table.add_row("best mean return", _fmt(last.best_mean if last else None))
        table.add_row(
            "last", f"{last.status} {_fmt(last.mean_return)}" if last else "(seed program)"
        )
        table.add_row("env steps", str(state.env_steps if state else 0))
        table.add_row(
            "LLM tokens / cost",
            f"{state.tokens if state else 0} / {state.cost if state else 0.0:.4f}",
        )
        table.add_row("elapsed", f"{time.monotonic() - self.started:.0f} s")
        for report in self.recent[-5:]:
            table.add_row(
                f"  #{report.iteration + 1}",
                f"{report.status} {_fmt(report.mean_return)} {report.note[:60]}",
            )
        return table

    def iteration(self, report: IterationReport, state: LoopState) -> None:
        self.recent.append(report)
        self.state = state
        self.live.update(self._render())

    def message(self, text: str) -> None:
        self.console.print(text)
