"""Videos the tests make for themselves: coloured shapes moving over a textured background.

``make_video`` writes an H.264 mp4 with imageio-ffmpeg's bundled ffmpeg and returns the ground
truth (one ``H×W`` bool mask per shape per frame), so tests can check masks, trajectories and
exports against known answers.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np


@dataclass(frozen=True)
class Shape:
    """A disc (``kind='disc'``) or square moving on a straight line from ``start`` to ``end``."""

    kind: str
    color: tuple[int, int, int]
    radius: float
    start: tuple[float, float]
    end: tuple[float, float]


DEFAULT_SHAPES = (
    Shape("disc", (220, 30, 30), 0.12, (0.2, 0.3), (0.7, 0.6)),
    Shape("square", (30, 60, 220), 0.10, (0.8, 0.75), (0.3, 0.3)),
)


def shape_mask(shape: Shape, t: float, width: int, height: int) -> np.ndarray:
    """The shape's H×W bool mask at time ``t`` in [0, 1]."""
    cx = (shape.start[0] + (shape.end[0] - shape.start[0]) * t) * width
    cy = (shape.start[1] + (shape.end[1] - shape.start[1]) * t) * height
    r = shape.radius * min(width, height)
    yy, xx = np.mgrid[0:height, 0:width]
    if shape.kind == "disc":
        return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
    return (np.abs(xx + 0.5 - cx) <= r) & (np.abs(yy + 0.5 - cy) <= r)


def background(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [90 + 40 * np.sin(xx / 17.0), 120 + 30 * np.cos(yy / 23.0), 100 + 20 * np.sin((xx + yy) / 31.0)],
        axis=-1,
    )
    return base.clip(0, 255).astype(np.uint8)


def render(num_frames: int, width: int, height: int, shapes=DEFAULT_SHAPES):
    """Yield ``(frame, masks)`` per frame: frame H×W×3 uint8, masks list of H×W bool (one per shape)."""
    bg = background(width, height)
    for i in range(num_frames):
        t = i / max(num_frames - 1, 1)
        frame = bg.copy()
        masks = []
        taken = np.zeros((height, width), dtype=bool)
        for shape in shapes:
            mask = shape_mask(shape, t, width, height)
            frame[mask] = shape.color
            masks.append(mask)
            taken |= mask
        # later shapes are drawn on top: earlier masks lose the pixels they cover
        for k in range(len(masks)):
            for later in masks[k + 1 :]:
                masks[k] = masks[k] & ~later
        yield frame, masks


def make_video(
    path: Path,
    num_frames: int = 48,
    width: int = 320,
    height: int = 240,
    fps: float = 24.0,
    shapes=DEFAULT_SHAPES,
    rotation: int | None = None,
    pix_fmt_in: str = "rgb24",
) -> list[list[np.ndarray]]:
    """Write an H.264 mp4 of moving shapes; return ground-truth masks ``[frame][shape]``.

    ``rotation`` (degrees, e.g. 90) adds display-rotation metadata the way phones do, without
    touching the pixels: a player (and the tracker) must show the frames rotated.
    """
    path = Path(path)
    truth = []
    target = path if rotation is None else path.with_name(path.stem + ".norot" + path.suffix)
    writer = imageio_ffmpeg.write_frames(
        str(target),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in=pix_fmt_in,
        quality=None,
        bitrate=None,
        output_params=["-crf", "12", "-pix_fmt", "yuv420p"],
        macro_block_size=1,
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame, masks in render(num_frames, width, height, shapes):
        writer.send(np.ascontiguousarray(frame))
        truth.append(masks)
    writer.close()
    if rotation is not None:
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        subprocess.run(
            [
                ffmpeg,
                "-y",
                "-loglevel",
                "error",
                "-display_rotation",
                str(rotation),
                "-i",
                str(target),
                "-c",
                "copy",
                str(path),
            ],
            check=True,
        )
        target.unlink()
    return truth


class ListFrames:
    """An in-memory FrameSequence (what TrackingSession reads frames from)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.height, self.width = frames[0].shape[:2]

    def __len__(self) -> int:
        return len(self.frames)

    def get(self, frame_idx: int) -> np.ndarray:
        return self.frames[frame_idx]
