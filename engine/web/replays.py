"""Episode replays for the web view: rendered on first request, then served from a cache.

A stored evaluation never changes (storage is append-only) and its id is a uuid, so a GIF
rendered once for (evaluation, episode, render settings) stays right forever: the file name is
the cache key. Two requests for the same replay render it once (a lock per key); the file is
written under a temporary name and renamed, so a reader never sees half a GIF.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from engine.audit import episode_log
from engine.video import VideoSettings, write_video
from sandbox.games import get_game
from sandbox.replay import FrameWindow, replay_frames, stride_for
from storage import Store

RENDER_VERSION = 1  # bump when the drawing changes, so old cached files are not served


@dataclass(frozen=True)
class ReplayCacheSettings:
    directory: Path
    max_frames: int = 600
    scale: int = 2
    fps: float = 30.0


class ReplayCache:
    def __init__(self, store: Store, settings: ReplayCacheSettings) -> None:
        self.store = store
        self.settings = settings
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path_for(self, evaluation_id: str, episode: int) -> Path:
        s = self.settings
        name = f"{evaluation_id}-{episode}-v{RENDER_VERSION}-s{s.scale}-f{s.max_frames}.gif"
        return s.directory / name

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def gif(self, evaluation_id: str, episode: int) -> Path:
        """The GIF of the episode, rendering it if it is not cached yet.

        Raises `engine.audit.Unreplayable` when the episode has no action log.
        """
        path = self.path_for(evaluation_id, episode)
        if path.exists():
            return path
        with self._lock(path.name):
            if path.exists():
                return path
            evaluation = self.store.get_evaluation(evaluation_id)
            traces = {trace.episode: trace.data for trace in self.store.traces(evaluation.id)}
            log = episode_log(evaluation, episode, traces.get(episode))
            length = len(log.actions)
            window = FrameWindow(0, None, stride_for(max(length, 1), self.settings.max_frames))
            self.settings.directory.mkdir(parents=True, exist_ok=True)
            write_video(
                path,
                replay_frames(log, window),
                get_game(log.game),
                length,
                VideoSettings(fps=self.settings.fps, scale=self.settings.scale),
            )
        return path
