"""Render the example clips the web app offers (``python assets/make_examples.py``).

The clips are drawn with numpy and encoded with imageio-ffmpeg's bundled ffmpeg, so the project
can ship them under its own licence and anyone can regenerate them byte-for-byte-ish:

* ``bouncing_ball.mp4``: a red ball bouncing across a tiled floor in front of a wall;
* ``two_cars.mp4``: a blue and a yellow car (boxes with wheels and windows) crossing on a road.

Each is a few seconds of H.264 at 480×270, a few hundred KB.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np

logger = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS = 480, 270, 24
HERE = Path(__file__).resolve().parent


def _grid() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    return xx.astype(np.float32), yy.astype(np.float32)


def _noise(seed: int, amount: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, amount, size=(HEIGHT, WIDTH, 1)).astype(np.float32)


def _disc(
    xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, rx: float, ry: float | None = None
) -> np.ndarray:
    ry = rx if ry is None else ry
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def _rect(xx: np.ndarray, yy: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)


def bouncing_ball(seconds: float = 4.0) -> Iterator[np.ndarray]:
    """A shaded red ball bouncing left to right, with its shadow on a checkered floor."""
    xx, yy = _grid()
    horizon = HEIGHT * 0.62
    wall = np.stack([200 + 0 * xx, 190 + 8 * np.sin(xx / 9.0), 170 + 0 * xx], axis=-1)
    tiles = ((xx // 40 + (yy // 20)) % 2).astype(np.float32)
    floor = np.stack([120 + 40 * tiles, 90 + 35 * tiles, 60 + 25 * tiles], axis=-1)
    scene = np.where((yy < horizon)[..., None], wall, floor) + _noise(1, 4.0)
    radius = 26.0
    frames = int(seconds * FPS)
    for i in range(frames):
        t = i / FPS
        cx = 40 + (WIDTH - 80) * (i / (frames - 1))
        bounce = abs(np.sin(np.pi * t * 1.3))
        floor_y = HEIGHT - 40
        cy = floor_y - radius - bounce * 130
        squash = 1.0 + 0.18 * max(0.0, 0.25 - bounce) * 4
        image = scene.copy()
        shadow = _disc(xx, yy, cx, floor_y + 4, radius * (1.2 - 0.4 * bounce), 7)
        image[shadow] *= 0.55
        ball = _disc(xx, yy, cx, cy + radius * (squash - 1), radius * squash, radius / squash)
        light = np.clip(1.25 - np.hypot(xx - (cx - 9), yy - (cy - 9)) / (radius * 1.6), 0.35, 1.25)
        image[ball] = (np.array([215.0, 35.0, 40.0]) * light[ball][:, None]).clip(0, 255)
        yield image.clip(0, 255).astype(np.uint8)


def _car(
    image: np.ndarray, xx: np.ndarray, yy: np.ndarray, x: float, base_y: float, body: tuple, facing: int
) -> None:
    length, height = 150.0, 34.0
    x0, x1 = x - length / 2, x + length / 2
    image[_rect(xx, yy, x0, base_y - height, x1, base_y)] = body
    cabin_x0 = x0 + (35 if facing > 0 else 25)
    image[_rect(xx, yy, cabin_x0, base_y - height - 26, cabin_x0 + 90, base_y - height)] = body
    for wx in (cabin_x0 + 8, cabin_x0 + 48):
        image[_rect(xx, yy, wx, base_y - height - 20, wx + 34, base_y - height - 3)] = (170, 215, 235)
    lamp_x = x1 - 8 if facing > 0 else x0
    image[_rect(xx, yy, lamp_x, base_y - height + 6, lamp_x + 8, base_y - height + 14)] = (255, 240, 150)
    for wheel_x in (x0 + 32, x1 - 32):
        image[_disc(xx, yy, wheel_x, base_y, 17)] = (25, 25, 28)
        image[_disc(xx, yy, wheel_x, base_y, 7)] = (160, 160, 165)


def two_cars(seconds: float = 4.0) -> Iterator[np.ndarray]:
    """A blue car driving right on the far lane, a yellow one driving left on the near lane."""
    xx, yy = _grid()
    sky = np.stack([135 + 0.2 * yy, 180 + 0.15 * yy, 235 + 0 * yy], axis=-1)
    grass = np.stack([70 + 0 * xx, 140 + 10 * np.sin(xx / 5.0), 60 + 0 * xx], axis=-1)
    road = np.stack([80 + 0 * xx, 80 + 0 * xx, 85 + 0 * xx], axis=-1)
    scene = np.where((yy < 110)[..., None], sky, grass)
    scene = np.where(((yy >= 130) & (yy < 250))[..., None], road, scene)
    dashes = (yy >= 188) & (yy < 193) & ((xx // 30) % 2 == 0)
    scene[dashes] = (235, 235, 235)
    scene = scene + _noise(2, 3.0)
    frames = int(seconds * FPS)
    for i in range(frames):
        s = i / (frames - 1)
        image = scene.copy()
        _car(image, xx, yy, -60 + (WIDTH + 120) * s, 178, (40, 80, 200), facing=1)
        _car(image, xx, yy, WIDTH + 60 - (WIDTH + 120) * s, 238, (235, 195, 30), facing=-1)
        yield image.clip(0, 255).astype(np.uint8)


EXAMPLES = {
    "bouncing_ball.mp4": (bouncing_ball, "red ball"),
    "two_cars.mp4": (two_cars, "yellow car"),
}


def write(path: Path, frames: Iterator[np.ndarray]) -> Path:
    writer = imageio_ffmpeg.write_frames(
        str(path), (WIDTH, HEIGHT), fps=FPS, codec="libx264", quality=None, bitrate=None,
        output_params=["-crf", "20", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
        macro_block_size=1, ffmpeg_log_level="error",
    )  # fmt: skip
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the clips to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (make, _prompt) in EXAMPLES.items():
        path = write(args.out / name, make())
        logger.info("%s: %.0f KB", path, path.stat().st_size / 1024)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
