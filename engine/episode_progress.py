"""Live per-episode progress of an evaluation: a rich bar on a terminal, else one line each.

`ProgressRunner` wraps any `sandbox.episodes.EpisodeRunner` and reports each episode as it
ends, so `sandbox.evaluate.evaluate(..., pool=ProgressRunner(...))` shows progress without the
sandbox knowing anything about terminals. Everything shown comes from validated results
(status, numbers) and is still passed through `safe_markup` before rich sees it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from engine.textsafe import safe_line, safe_markup

if TYPE_CHECKING:
    from sandbox.episodes import EpisodeRequest, EpisodeRunner
    from sandbox.results import EpisodeResult


class EpisodeProgress:
    """Shows each finished episode; `live` draws a bar, `lines` prints one line per episode.

    With neither (JSON output to a pipe), it stays silent.
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        live: bool,
        lines: bool,
        stream: TextIO | None = None,
    ) -> None:
        self.total = total
        self.label = safe_line(label)
        self.done = 0
        self.live = live
        self.lines = lines and not live
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> EpisodeProgress:
        if self.live:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("episodes"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(safe_markup(self.label), total=self.total)
        elif self.lines:
            self._print(f"evaluating {self.label}: {self.total} episode(s)")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def silence(self) -> None:
        """Show nothing more: episodes cut short by a stop are not results."""
        with self._lock:
            self.live = self.lines = False
            if self._bar is not None:
                self._bar.stop()
                self._bar = None

    def episode_done(self, episode: EpisodeResult) -> None:
        with self._lock:
            if not (self.live or self.lines):
                return
            self.done += 1
            summary = (
                f"seed {episode.seed} {episode.status}, return {episode.episode_return:g}, "
                f"{episode.length} steps"
            )
            if self._bar is not None and self._task is not None:
                self._bar.update(
                    self._task,
                    advance=1,
                    description=safe_markup(f"{self.label}: last {summary}"),
                )
            elif self.lines:
                elapsed = time.monotonic() - self.started
                self._print(f"episode {self.done}/{self.total} done: {summary} ({elapsed:.1f} s)")


class ProgressRunner:
    """An `EpisodeRunner` that tells an `EpisodeProgress` about every episode it plays."""

    def __init__(self, runner: EpisodeRunner, progress: EpisodeProgress) -> None:
        self.runner = runner
        self.progress = progress

    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def slots(self) -> int:
        return self.runner.slots

    def run(self, request: EpisodeRequest) -> EpisodeResult:
        episode = self.runner.run(request)
        self.progress.episode_done(episode)
        return episode

    def close(self) -> None:
        self.runner.close()
