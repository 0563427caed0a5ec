"""Frames from a replay into a GIF or MP4 file a person can open, with an optional overlay.

The emulator's 160x210 screen is scaled by an integer factor (nearest neighbour: Atari pixels
stay sharp) and, with the overlay, a bar below it says the step, the score so far and the
action taken, so the game itself is never covered.

GIF goes through Pillow (imageio's own GIF backend) fed one frame at a time, so frames are held
as 1-byte palette images rather than a stacked RGB array; GIF still keeps every frame until
the file is written, hence `max_frames` (a stride is chosen to respect it). Identical
consecutive frames are merged by the GIF encoder into one longer frame (only possible without
the overlay, whose step counter changes every frame). MP4 streams through the ffmpeg binary
that the imageio-ffmpeg wheel ships (H.264, yuv420p: plays in browsers and players).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sandbox.games import Game
from sandbox.replay import ReplayStep

FORMATS = (".gif", ".mp4")
FONT_PIXELS = 10  # per scale unit
BAR_PIXELS = 28  # two lines of text, per scale unit (even, as H.264 wants)


class VideoError(ValueError):
    """A video that cannot be written (unknown format, a path that cannot be written)."""


@dataclass(frozen=True)
class VideoSettings:
    fps: float = 30.0
    scale: int = 2
    overlay: bool = True
    max_gif_frames: int = 1500  # GIF holds every frame in memory until it is written

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 120:
            raise VideoError(f"fps must be in (0, 120] (got {self.fps:g})")
        if not 1 <= self.scale <= 8:
            raise VideoError(f"scale must be 1..8 (got {self.scale})")


def video_format(path: Path) -> str:
    """The format the file name asks for (`.gif` or `.mp4`), or VideoError."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise VideoError(f"{path.name}: the output must end in .gif or .mp4")
    return suffix


def frame_size(settings: VideoSettings) -> tuple[int, int]:
    """(width, height) in pixels of every frame written with `settings`."""
    height = 210 * settings.scale + (BAR_PIXELS * settings.scale if settings.overlay else 0)
    return 160 * settings.scale, height


def _scaled(frame: np.ndarray, scale: int) -> np.ndarray:
    return frame.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else frame


class _Overlay:
    """Draws the bar under the screen: "step 12/3000  score -3" and the action's name."""

    def __init__(self, game: Game, total_steps: int, scale: int) -> None:
        from PIL import ImageFont

        self.game = game
        self.total_steps = total_steps
        self.scale = scale
        self.font = ImageFont.load_default(size=FONT_PIXELS * scale)

    def draw(self, played: ReplayStep, screen: np.ndarray) -> np.ndarray:
        from PIL import Image, ImageDraw

        width = screen.shape[1]
        bar = Image.new("RGB", (width, BAR_PIXELS * self.scale), (16, 16, 16))
        pen = ImageDraw.Draw(bar)
        margin = 3 * self.scale
        line = (FONT_PIXELS + 3) * self.scale
        score = f"{played.score:g}"
        pen.text(
            (margin, margin // 2),
            f"step {played.step + 1}/{self.total_steps}  score {score}",
            fill=(240, 240, 240),
            font=self.font,
        )
        action = self.game.actions[played.action]
        pen.text(
            (margin, margin // 2 + line),
            f"action {played.action} {action}",
            fill=(150, 200, 255),
            font=self.font,
        )
        return np.concatenate([screen, np.asarray(bar, dtype=np.uint8)], axis=0)


def _frames(
    steps: Iterable[ReplayStep], game: Game, total_steps: int, settings: VideoSettings
) -> Iterator[np.ndarray]:
    overlay = _Overlay(game, total_steps, settings.scale) if settings.overlay else None
    for played in steps:
        if played.frame is None:
            continue
        screen = _scaled(played.frame, settings.scale)
        yield overlay.draw(played, screen) if overlay is not None else screen


def write_video(
    path: Path,
    steps: Iterable[ReplayStep],
    game: Game,
    total_steps: int,
    settings: VideoSettings,
) -> int:
    """Write the frames of `steps` to `path` (format from its suffix); the frames given.

    `total_steps` is the episode's length, for the overlay's "step i/N". The file is written
    to a temporary name beside `path` and renamed into place, so a failed write leaves no
    half file under the name asked for.
    """
    suffix = video_format(path)
    partial = path.with_name(f".{path.name}.partial{suffix}")
    try:
        frames = _frames(steps, game, total_steps, settings)
        count = _write_gif(partial, frames, settings) if suffix == ".gif" else 0
        if suffix == ".mp4":
            count = _write_mp4(partial, frames, settings)
        partial.replace(path)
    except OSError as error:
        raise VideoError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        partial.unlink(missing_ok=True)
    return count


def _write_gif(path: Path, frames: Iterator[np.ndarray], settings: VideoSettings) -> int:
    from PIL import Image

    first = next(frames, None)
    if first is None:
        raise VideoError("the replay has no frame in the range asked for")
    count = 1

    def rest() -> Iterator[Image.Image]:
        nonlocal count
        for frame in frames:
            count += 1
            yield Image.fromarray(frame)

    Image.fromarray(first).save(
        path,
        format="GIF",
        save_all=True,
        append_images=rest(),
        duration=round(1000 / settings.fps),
        loop=0,
    )
    return count


def _write_mp4(path: Path, frames: Iterator[np.ndarray], settings: VideoSettings) -> int:
    import imageio.v2 as imageio

    count = 0
    writer = imageio.get_writer(
        str(path),
        format="FFMPEG",
        fps=settings.fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=2,  # frames are even-sized already: never resized
        ffmpeg_log_level="error",
    )
    try:
        for frame in frames:
            writer.append_data(frame)
            count += 1
    finally:
        writer.close()
    if count == 0:
        raise VideoError("the replay has no frame in the range asked for")
    return count
