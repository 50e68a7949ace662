"""Drawing tracked objects on frames, and writing the overlay video.

Coordinates follow :mod:`tracker.types`: frames are ``H×W×3`` uint8 RGB, masks ``H×W`` bool at the
frame's size, points ``(x, y)`` in working-video pixels with pixel centres at integer coordinates
(a centroid is the mean column / row index of the mask's pixels, as in
:func:`tracker.masks.mask_centroid`).

:class:`OverlayWriter` pipes frames into the ffmpeg binary that ``imageio-ffmpeg`` ships and writes
an H.264 (yuv420p, ``+faststart``) mp4 that browsers play, under a temporary name that is renamed
into place only when the video is complete.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import tempfile
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import timing
from .errors import VideoError
from .masks import MaskStats, mask_box, mask_centroid
from .types import FrameResult, Point, TrackedObject, color_for

logger = logging.getLogger(__name__)

POSITIVE_COLOR = (40, 200, 70)
NEGATIVE_COLOR = (230, 40, 40)
LABEL_BACKGROUND = (16, 16, 16, 200)
OUTLINE_WIDTH = 2

TrailPoints = Sequence[Point | None]


# ---------------------------------------------------------------------------------- drawing


@timing.stage("draw")
def draw_overlay(
    frame: np.ndarray,
    result: FrameResult | None,
    objects: Mapping[int, TrackedObject],
    trails: Mapping[int, TrailPoints] | None = None,
    points: Sequence[tuple[float, float, int]] | None = None,
    alpha: float = 0.45,
    stats: Sequence[MaskStats] | None = None,
) -> np.ndarray:
    """A copy of ``frame`` with every object of ``result`` drawn on it; ``frame`` is not modified.

    ``frame`` is ``H×W×3`` uint8 RGB; ``result``'s masks must be ``H×W``. Each object gets its
    colour blended at ``alpha`` over its mask, a solid 2-px outline and an ``"<id> <name>"`` label
    above its box. Objects missing from ``objects`` are drawn with :func:`color_for` and their
    id. ``trails`` maps object ids to recent centroids ``(x, y)``, oldest first; None is a gap
    (the object was not visible) and older segments are drawn thinner and fainter. ``points`` are
    clicks ``(x, y, label)``: label 1 (object) green, 0 (not the object) red, white border.
    ``stats`` are the masks' statistics when the caller has them (:func:`tracker.masks.stack_stats`
    of ``result``, in its order): their boxes are used instead of finding them again. Masks that
    do not overlap (SAM 2's, once resolved) are tinted and outlined in one pass for all objects.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"draw_overlay needs an H×W×3 uint8 frame, got {frame.dtype} {frame.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    height, width = frame.shape[:2]
    out = np.array(frame, copy=True, order="C")
    labels: list[tuple[str, tuple[int, int, int], tuple[int, int, int, int]]] = []

    if result is not None:
        if (result.height, result.width) != (height, width):
            raise ValueError(f"masks are {result.width}×{result.height} but the frame is {width}×{height}")
        weight = int(round(alpha * 256))
        shown = []  # (index in result, box, colour)
        for index, object_id in enumerate(result.object_ids):
            tight = mask_box(result.masks[index]) if stats is None else stats[index].box
            if tight is None:
                continue
            box = (int(tight[0]), int(tight[1]), int(tight[2]), int(tight[3]))
            obj = objects.get(object_id)
            color = _rgb(obj.color if obj is not None else color_for(object_id))
            shown.append((index, box, color))
            labels.append((f"{object_id} {obj.name if obj is not None else ''}".strip(), color, box))
        if not _fill_and_outline_all(out, result.masks, shown, weight):
            for index, box, color in shown:
                _fill_and_outline(out, result.masks[index], box, color, weight)

    if trails:
        for object_id, trail in trails.items():
            obj = objects.get(object_id)
            _draw_trail(out, trail, _rgb(obj.color if obj is not None else color_for(object_id)))

    font_size = int(np.clip(round(min(height, width) / 36), 10, 48))
    for text, color, (x0, y0, _, _) in labels:
        patch = _label_patch(text, color, font_size)
        patch_height = patch.shape[0]
        top = y0 - patch_height if y0 - patch_height >= 0 else y0  # above the box, else inside it
        left = min(max(0, x0), max(0, width - patch.shape[1]))
        _composite(out, left, top, patch)

    if points:
        radius = max(4, round(min(height, width) / 110))
        for x, y, label in points:
            color = POSITIVE_COLOR if int(label) == 1 else NEGATIVE_COLOR
            patch = _point_patch(color, radius)
            _composite(out, int(round(x)) - radius - 1, int(round(y)) - radius - 1, patch)
    return out


def _rgb(color: Sequence[int]) -> tuple[int, int, int]:
    red, green, blue = (int(c) for c in color)  # a project file may hold lists
    return red, green, blue


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """Binary erosion with a 3×3 cross, ``steps`` times; outside the array counts as background."""
    padded = np.zeros((mask.shape[0] + 2 * steps, mask.shape[1] + 2 * steps), dtype=bool)
    padded[steps : steps + mask.shape[0], steps : steps + mask.shape[1]] = mask
    for _ in range(steps):  # each step shrinks the array by one pixel a side, back to mask's shape
        padded = (
            padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )
    return padded


def _fill_and_outline(
    out: np.ndarray,
    mask: np.ndarray,
    box: tuple[int, int, int, int],
    color: tuple[int, int, int],
    weight: int,
) -> None:
    """Blend ``color`` over ``mask`` (``weight``/256) and draw the outline, inside ``box`` only."""
    x0, y0, x1, y1 = box
    region = out[y0:y1, x0:x1]
    inside = mask[y0:y1, x0:x1]
    tint = np.asarray(color, dtype=np.uint16) * weight
    blended = ((region.astype(np.uint16) * (256 - weight) + tint) >> 8).astype(np.uint8)
    np.copyto(region, blended, where=inside[..., None])
    edge = inside & ~_erode(inside, OUTLINE_WIDTH)
    region[edge] = color


def _fill_and_outline_all(
    out: np.ndarray,
    masks: np.ndarray,
    shown: list[tuple[int, tuple[int, int, int, int], tuple[int, int, int]]],
    weight: int,
) -> bool:
    """:func:`_fill_and_outline` for every ``(index, box, colour)`` of ``shown`` at once, pixel for pixel.

    Builds one label image over the boxes' union, blends every object's colour in one pass and
    finds every outline with one erosion of the labels (:func:`_erode_labels`). Worth it when
    the boxes cover their union several times over (random weights' masks span the frame);
    returns False, drawing nothing, when they do not, when fewer than two are shown, or when
    the masks overlap (then each is drawn over the others, one by one).
    """
    if len(shown) < 2 or len(shown) >= 255:
        return False
    x0 = min(box[0] for _, box, _ in shown)
    y0 = min(box[1] for _, box, _ in shown)
    x1 = max(box[2] for _, box, _ in shown)
    y1 = max(box[3] for _, box, _ in shown)
    if sum((bx1 - bx0) * (by1 - by0) for _, (bx0, by0, bx1, by1), _ in shown) < 2 * (x1 - x0) * (y1 - y0):
        return False  # boxes mostly apart: drawing each inside its own box is cheaper
    label = np.zeros((y1 - y0, x1 - x0), np.uint8)
    area = 0
    for number, (index, (bx0, by0, bx1, by1), _) in enumerate(shown, start=1):
        crop = masks[index][by0:by1, bx0:bx1]
        np.copyto(label[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0], number, where=crop)
        area += int(np.count_nonzero(crop))
    inside = label > 0
    if area != int(np.count_nonzero(inside)):
        return False
    colors = np.array([(0, 0, 0)] + [color for _, _, color in shown], dtype=np.uint16)
    region = out[y0:y1, x0:x1]
    blended = ((region.astype(np.uint16) * (256 - weight) + colors[label] * weight) >> 8).astype(np.uint8)
    np.copyto(region, blended, where=inside[..., None])
    edge = inside & ~_erode_labels(label, OUTLINE_WIDTH)
    region[edge] = colors[label[edge]].astype(np.uint8)
    return True


def _erode_labels(label: np.ndarray, steps: int) -> np.ndarray:
    """Where :func:`_erode` of each label's own mask (label > 0) would keep the pixel, all labels at once.

    One step keeps a pixel whose 4 neighbours carry its label; each further step also asks that
    of the 4 neighbours (which then carry the same label). Outside the array counts as label 0.
    """
    padded = np.zeros((label.shape[0] + 2, label.shape[1] + 2), dtype=label.dtype)
    padded[1:-1, 1:-1] = label
    kept = (
        (padded[:-2, 1:-1] == label)
        & (padded[2:, 1:-1] == label)
        & (padded[1:-1, :-2] == label)
        & (padded[1:-1, 2:] == label)
    )
    for _ in range(steps - 1):
        grown = np.zeros(padded.shape, dtype=bool)
        grown[1:-1, 1:-1] = kept
        kept = kept & grown[:-2, 1:-1] & grown[2:, 1:-1] & grown[1:-1, :-2] & grown[1:-1, 2:]
    return kept


def _composite(out: np.ndarray, left: int, top: int, patch: np.ndarray) -> None:
    """Alpha-blend an ``h×w×4`` uint8 RGBA ``patch`` onto ``out`` at (left, top), clipped."""
    height, width = out.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + pw), min(height, top + ph)
    if x0 >= x1 or y0 >= y1:
        return
    src = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    alpha = src[..., 3]
    ys, xs = np.nonzero(alpha)
    if ys.size == 0:
        return
    region = out[y0:y1, x0:x1]
    a = alpha[ys, xs].astype(np.uint16)[:, None]
    blended = (
        src[ys, xs, :3].astype(np.uint16) * a + region[ys, xs].astype(np.uint16) * (255 - a) + 127
    ) // 255
    region[ys, xs] = blended.astype(np.uint8)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


@lru_cache(maxsize=256)
def _label_patch(text: str, color: tuple[int, int, int], size: int) -> np.ndarray:
    """RGBA patch: a colour swatch and white text on a dark box. Cached: labels repeat every frame."""
    font = _font(size)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))  # ints already; typed as floats
    pad = max(2, size // 5)
    swatch = max(4, size // 2)
    width = pad + swatch + pad + (right - left) + pad
    height = max(bottom - top, swatch) + 2 * pad
    image = Image.new("RGBA", (width, height), LABEL_BACKGROUND)
    draw = ImageDraw.Draw(image)
    swatch_top = (height - swatch) // 2
    draw.rectangle((pad, swatch_top, pad + swatch - 1, swatch_top + swatch - 1), fill=(*color, 255))
    draw.text((pad + swatch + pad - left, pad - top), text, font=font, fill=(255, 255, 255, 255))
    patch = np.asarray(image)
    patch.flags.writeable = False
    return patch


@lru_cache(maxsize=16)
def _point_patch(color: tuple[int, int, int], radius: int) -> np.ndarray:
    """RGBA patch of a filled circle with a white border, centred in a ``2r+3`` square."""
    size = 2 * radius + 3
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse(
        (1, 1, size - 2, size - 2), fill=(*color, 255), outline=(255, 255, 255, 255), width=2
    )
    patch = np.asarray(image)
    patch.flags.writeable = False
    return patch


def _draw_trail(out: np.ndarray, trail: TrailPoints, color: tuple[int, int, int]) -> None:
    """A polyline through the trail's points, older segments thinner and more transparent."""
    count = len(trail)
    segments: list[tuple[int, Point, Point]] = []
    for k in range(1, count):
        start, end = trail[k - 1], trail[k]
        if start is not None and end is not None:
            segments.append((k, start, end))
    if not segments:
        return
    height, width = out.shape[:2]
    max_width = max(2, round(min(height, width) / 180))
    xs = [p[0] for _, a, b in segments for p in (a, b)]
    ys = [p[1] for _, a, b in segments for p in (a, b)]
    margin = max_width + 2
    left = max(0, int(np.floor(min(xs))) - margin)
    top = max(0, int(np.floor(min(ys))) - margin)
    right = min(width, int(np.ceil(max(xs))) + margin + 1)
    bottom = min(height, int(np.ceil(max(ys))) + margin + 1)
    if left >= right or top >= bottom:
        return
    layer = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    strokes = []
    for k, (ax, ay), (bx, by) in segments:
        age = k / (count - 1)  # 0 oldest … 1 newest
        line = ((ax - left, ay - top), (bx - left, by - top))
        strokes.append((line, max(1, round(max_width * (0.3 + 0.7 * age))), int(255 * (0.15 + 0.85 * age))))
    for line, line_width, opacity in strokes:  # a dark halo first keeps the trail visible on its own colour
        draw.line(line, fill=(0, 0, 0, opacity // 2), width=line_width + 2)
    for line, line_width, opacity in strokes:
        draw.line(line, fill=(*color, opacity), width=line_width)
    _composite(out, left, top, np.asarray(layer))


# ---------------------------------------------------------------------------------- trails


class TrailHistory:
    """Each object's centroid over the last ``length`` frames, None where it was not visible.

    Feed results in playback order with :meth:`update`. A result for a frame at or before the
    previous one (a seek, or frames in reverse) starts every trail over.
    """

    def __init__(self, length: int = 30) -> None:
        if length < 2:
            raise ValueError("a trail needs at least two points")
        self.length = int(length)
        self._trails: dict[int, deque[Point | None]] = {}
        self._last_frame: int | None = None

    def update(self, result: FrameResult, stats: Sequence[MaskStats] | None = None) -> None:
        """Add one frame: every object's centroid, or None for objects absent or empty in it.

        ``stats`` are the masks' statistics when the caller has them (in ``result``'s order).
        """
        if self._last_frame is not None and result.frame_idx <= self._last_frame:
            self.clear()
        self._last_frame = result.frame_idx
        present: set[int] = set()
        for index, object_id in enumerate(result.object_ids):
            trail = self._trails.setdefault(object_id, deque(maxlen=self.length))
            trail.append(mask_centroid(result.masks[index]) if stats is None else stats[index].centroid)
            present.add(object_id)
        for object_id in list(self._trails):
            if object_id not in present:
                trail = self._trails[object_id]
                trail.append(None)
                if all(point is None for point in trail):
                    del self._trails[object_id]  # faded out completely

    def trails(self) -> dict[int, list[Point | None]]:
        """Object id → centroids oldest first (None = gap), for :func:`draw_overlay`."""
        return {object_id: list(trail) for object_id, trail in self._trails.items() if any(trail)}

    def clear(self) -> None:
        self._trails.clear()
        self._last_frame = None


# ---------------------------------------------------------------------------------- writing


def _pump(frames: queue.Queue, stdin: IO[bytes], errors: list[BaseException]) -> None:
    """Writer thread: move frames from the queue into ffmpeg until the None sentinel."""
    while True:
        frame = frames.get()
        if frame is None:
            return
        if errors:
            continue  # keep draining so a producer blocked on put() is released
        try:
            with timing.stage("encode"):
                stdin.write(frame)
        except BaseException as exc:  # handed to the producer, re-raised there
            errors.append(exc)


def _cleanup(process: subprocess.Popen, temp_path: Path, frames: queue.Queue | None) -> None:
    """Garbage-collected without close/abort: stop ffmpeg and remove the partial file."""
    if process.poll() is None:
        process.kill()
        process.wait()
    if frames is not None:
        frames.put(None)
    temp_path.unlink(missing_ok=True)


class OverlayWriter:
    """Write RGB frames, as they arrive, into a browser-playable H.264 mp4 at ``path``.

    ``size`` is ``(width, height)``; every frame must be ``height×width×3`` uint8 RGB. yuv420p
    needs even sides: an odd side is padded by one black pixel. The video is constant frame rate
    at ``fps`` and has no audio. It is written to a hidden temporary file next to ``path`` and
    renamed into place by :meth:`close`, so a half-written file never appears under ``path``;
    :meth:`abort` (also what leaving a ``with`` block through an exception does) deletes it.

    ``threaded=True`` hands frames to a thread through a queue of ``queue_size`` frames, so
    writing into ffmpeg overlaps with the caller's work; a frame must not be changed after it
    was written. An error in that thread is raised by the next :meth:`write` or by :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int],
        threaded: bool = False,
        crf: int = 20,
        preset: str = "veryfast",
        queue_size: int = 16,
    ) -> None:
        import imageio_ffmpeg

        width, height = (int(v) for v in size)
        if width < 1 or height < 1:
            raise ValueError(f"size must be positive, got {size}")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.width = width
        self.height = height
        self._frames_written = 0
        self._finished = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temp_path = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:12]}.partial.mp4")
        rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-framerate",
            str(rate),
            "-i",
            "pipe:0",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-crf",
            str(int(crf)),
            "-pix_fmt",
            "yuv420p",
        ]
        if width % 2 or height % 2:
            command += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        command += ["-movflags", "+faststart", "-f", "mp4", str(self._temp_path)]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr
            )
        except OSError as exc:
            self._stderr.close()
            raise VideoError(f"ffmpeg could not be started ({exc}); reinstall imageio-ffmpeg.") from None
        assert self._process.stdin is not None
        self._stdin = self._process.stdin
        self._errors: list[BaseException] = []
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=max(1, int(queue_size)))
            self._thread = threading.Thread(
                target=timing.bind(_pump),  # records its stages where the writer was made
                args=(self._queue, self._stdin, self._errors),
                name="overlay-writer",
                daemon=True,
            )
            self._thread.start()
        self._finalizer = weakref.finalize(self, _cleanup, self._process, self._temp_path, self._queue)

    @property
    def frames_written(self) -> int:
        """Frames accepted by :meth:`write` so far."""
        return self._frames_written

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @timing.stage("encode")
    def write(self, frame: np.ndarray) -> None:
        """Append one ``height×width×3`` uint8 RGB frame."""
        if self._finished:
            raise RuntimeError(f"the overlay writer for {self.path.name} is already closed")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a {self.height}×{self.width}×3 uint8 frame, got {frame.dtype} {frame.shape}"
            )
        self._raise_pending()
        frame = np.ascontiguousarray(frame)
        if self._queue is not None:
            self._queue.put(frame)
        else:
            try:
                self._stdin.write(frame.data)  # the contiguous pixels, not a copy
            except OSError as exc:
                raise self._failure(exc) from None
        self._frames_written += 1

    def _raise_pending(self) -> None:
        if self._errors:
            error = self._errors[0]
            raise self._failure(error) if isinstance(error, OSError) else error

    def _failure(self, exc: BaseException) -> VideoError:
        self._stderr.seek(0)
        details = self._stderr.read().decode(errors="replace").strip().splitlines()
        reason = details[-1] if details else str(exc)
        return VideoError(
            f"Writing the overlay video {self.path.name} failed ({reason}); check free disk space."
        )

    def close(self) -> Path:
        """Finish encoding, move the video to ``path`` and return it.

        Raises what went wrong in the writer thread or ffmpeg (the partial file is deleted then),
        and ``ValueError`` when no frame was written. Calling it again does nothing.
        """
        if self._finished:
            return self.path
        error: BaseException | None = None
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            if self._errors:
                error = self._errors[0]
        try:
            self._stdin.close()
        except OSError as exc:
            error = error or exc
        returncode = self._process.wait()
        if isinstance(error, OSError) or (error is None and returncode != 0):
            error = self._failure(error or RuntimeError(f"ffmpeg exited with status {returncode}"))
        if error is None and self._frames_written == 0:
            error = ValueError(f"no frames were written to {self.path.name}; nothing to save")
        self._finish()
        if error is not None:
            self._temp_path.unlink(missing_ok=True)
            raise error
        os.replace(self._temp_path, self.path)
        logger.info(
            "wrote %s: %d frames, %dx%d at %.3f fps",
            self.path,
            self._frames_written,
            self.width,
            self.height,
            self.fps,
        )
        return self.path

    def abort(self) -> None:
        """Stop encoding and delete the partial file; ``path`` is left untouched. Safe to repeat."""
        if self._finished:
            return
        if self._process.poll() is None:
            self._process.kill()
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        try:
            self._stdin.close()
        except OSError:
            pass
        self._process.wait()
        self._temp_path.unlink(missing_ok=True)
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        self._finalizer.detach()
        self._stderr.close()
