"""Progress of a run: a live rich table on a terminal, one plain line per iteration otherwise.

Notes come from proposers (an LLM's words), so they go through textsafe before display.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from engine.config import RunConfig
from engine.formatting import number
from engine.loop import IterationReport, LoopState
from engine.textsafe import safe_line, safe_markup


def _best(report: IterationReport | None) -> str:
    if report is None:
        return "-"
    held = report.best_holdout
    return number(report.best_mean) + (f" (held-out {held:.2f})" if held is not None else "")


def _rate(state: LoopState) -> float:
    return state.env_steps_here / max(time.monotonic() - state.started, 1e-9)


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
            f"iter {report.iteration + 1:>4} island {report.island} program {program} "
            f"status {report.status:<14} mean {number(report.mean_return):>8} "
            f"best {_best(report)} in_flight {state.in_flight} busy {state.busy:.0%} "
            f"env_steps {state.env_steps} ({_rate(state):.0f}/s) tokens {state.tokens} "
            f"| {safe_line(report.note[:80])}",
            file=self.stream,
            flush=True,
        )

    def message(self, text: str) -> None:
        print(safe_line(text), file=self.stream, flush=True)


class LiveReporter:
    """For a terminal: a table of the run's state, redrawn after every iteration."""

    def __init__(self, config: RunConfig) -> None:
        self.console = Console(stderr=True)
        self.config = config
        self.recent: list[IterationReport] = []
        self.state: LoopState | None = None
        self.started = time.monotonic()
        self.live = Live(self._render(), console=self.console, refresh_per_second=2)

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def _eta(self, state: LoopState) -> str:
        """Time left against the iteration count and every budget set, whichever is first."""
        elapsed = time.monotonic() - self.started
        done = max(state.iteration_here, 1)
        left = [(self.config.iterations - state.iteration) * elapsed / done]
        if self.config.max_time_seconds is not None:
            left.append(self.config.max_time_seconds - elapsed)
        if self.config.max_env_steps is not None and state.env_steps_here:
            rate = state.env_steps_here / elapsed
            left.append((self.config.max_env_steps - state.env_steps) / rate)
        return f"{max(0.0, min(left)):.0f} s"

    def _render(self) -> Table:
        state = self.state
        last = self.recent[-1] if self.recent else None
        table = Table(title="evocade run", show_header=False, expand=False)
        table.add_row("iteration", f"{state.iteration if state else 0} / {self.config.iterations}")
        table.add_row("best mean return", _best(last))
        table.add_row("in flight", f"{state.in_flight if state else 0}")
        if state is not None:
            table.add_row("env steps", f"{state.env_steps} ({_rate(state):.0f}/s)")
            table.add_row("sandbox slots busy", f"{state.busy:.0%}")
            table.add_row("LLM tokens / cost", f"{state.tokens} / {state.cost:.4f}")
            table.add_row("eta", self._eta(state))
        table.add_row("elapsed", f"{time.monotonic() - self.started:.0f} s")
        for report in self.recent[-5:]:
            table.add_row(
                f"  #{report.iteration + 1} i{report.island}",
                f"{report.status} {number(report.mean_return)} {safe_markup(report.note[:60])}",
            )
        return table

    def iteration(self, report: IterationReport, state: LoopState) -> None:
        self.recent.append(report)
        self.state = state
        self.live.update(self._render())

    def message(self, text: str) -> None:
        self.console.print(safe_markup(text))
