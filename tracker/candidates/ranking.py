"""Where the prompt is: whole frames ranked against it, and CLIP's heat map over one frame.

:func:`rank_frames` streams every ``stride``-th frame (about two a second by default), scores it
against the prompt with CLIP and keeps the ``top_k`` best that are at least ``min_gap`` frames
apart, so the chosen frames are not copies of one moment. Only CLIP-sized thumbnails of the
current batch are in memory, never the frames. :func:`clip_heatmap` scores one batch of
half-overlapping windows of a frame (half the short side wide: 21 on a 16:9 frame) and spreads
the scores over a grid, whose :meth:`Heatmap.peaks` become point prompts for SAM 2.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .. import timing
from ..errors import Cancelled
from ..types import VideoInfo
from .clip import TextImageEncoder, combine_scores, encode_images, resize


class VideoFrames(Protocol):
    """A video's frames as the finder reads them (:class:`tracker.video.VideoReader` is one).

    ``iter_frames(start, stop, step)`` yields ``(frame_idx, H×W×3 uint8)`` for ``range(start,
    stop, step)`` in order, decoding as it goes (ranking scans the video this way); ``get(i)``
    returns one frame (the frames that get masks). Not :class:`tracker.session.FrameSequence`,
    which is what SAM 2's session reads: a length and ``get``.
    """

    info: VideoInfo

    def iter_frames(self, start: int, stop: int, step: int) -> Iterable[tuple[int, np.ndarray]]: ...

    def get(self, frame_idx: int) -> np.ndarray: ...


@dataclass(frozen=True)
class RankedFrame:
    """A frame picked for masks: its index, time (s) and whole-frame score ``100·img·text``."""

    frame_idx: int
    score: float
    time: float = 0.0


def default_stride(fps: float) -> int:
    """About two ranked frames a second."""
    return max(1, round(fps / 2)) if fps > 0 else 1


def default_min_gap(fps: float, stride: int) -> int:
    """Chosen frames are at least a second and two strides apart."""
    return max(2 * stride, round(fps) if fps > 0 else 0, 1)


def frame_views(frame: np.ndarray, size: int = 224) -> list[np.ndarray]:
    """Square tiles that together cover the whole frame, each resized to ``size×size``.

    CLIP centre-crops to a square, so scoring a 16:9 frame as one image would ignore its sides;
    ``ceil(long / short)`` evenly spaced squares of the short side see everything at the
    resolution CLIP would use anyway.
    """
    height, width = frame.shape[:2]
    short, long_ = min(height, width), max(height, width)
    count = max(1, math.ceil(long_ / short - 1e-6))
    starts = np.linspace(0, long_ - short, count).round().astype(int) if count > 1 else [0]
    views = []
    for start in starts:
        tile = frame[:, start : start + short] if width >= height else frame[start : start + short, :]
        views.append(resize(tile, size, size))
    return views


def pick_frames(scores: Mapping[int, float], top_k: int, min_gap: int) -> list[tuple[int, float]]:
    """The ``top_k`` best-scoring frames, no two closer than ``min_gap`` frames, best first.

    Greedy: take the best remaining frame unless it is within ``min_gap`` of one already taken.
    Fewer than ``top_k`` come back when the video is too short to space them (ties: earlier first).
    """
    chosen: list[tuple[int, float]] = []
    for frame_idx, score in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
        if len(chosen) >= top_k:
            break
        if all(abs(frame_idx - taken) >= min_gap for taken, _ in chosen):
            chosen.append((frame_idx, float(score)))
    return chosen


def iter_frame_scores(
    reader: VideoFrames,
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    stride: int,
    *,
    batch_size: int = 32,
    thumb_size: int = 224,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[int, int, dict[int, float]]]:
    """Score every ``stride``-th frame; yield ``(frames_done, frames_total, scores)`` per batch.

    A frame's score is the best ``100·img·text`` over its :func:`frame_views`. Frames are
    streamed from ``reader.iter_frames``; only the current batch's thumbnails are held.
    Raises :class:`Cancelled` when ``cancel`` is set (checked between frames).
    """
    num_frames = reader.info.num_frames
    total = len(range(0, num_frames, stride))
    scores: dict[int, float] = {}
    pending: list[tuple[int, np.ndarray]] = []  # (frame_idx, thumbnail)
    done = 0

    def flush() -> None:
        features = encode_images(encoder, [thumb for _, thumb in pending], batch_size)
        view_scores = 100.0 * features @ text_features
        for (frame_idx, _), score in zip(pending, view_scores, strict=True):
            scores[frame_idx] = max(scores.get(frame_idx, -math.inf), float(score))
        pending.clear()

    for frame_idx, frame in reader.iter_frames(0, num_frames, stride):
        check_cancel(cancel)
        pending.extend((frame_idx, view) for view in frame_views(frame, thumb_size))
        done += 1
        if len(pending) >= batch_size:
            flush()
            yield done, total, dict(scores)
    if pending:
        check_cancel(cancel)
        flush()
    yield done, total, dict(scores)


def rank_frames(
    reader: VideoFrames,
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    stride: int,
    top_k: int,
    min_gap: int,
    *,
    batch_size: int = 32,
    thumb_size: int = 224,
    cancel: threading.Event | None = None,
) -> list[RankedFrame]:
    """The ``top_k`` frames (every ``stride``-th considered) that best match ``text_features``.

    Whole-frame score ``100·img·text`` (best over the frame's square views); chosen frames are
    at least ``min_gap`` frames apart; best first. Never holds more than one batch of thumbnails.
    """
    scores: dict[int, float] = {}
    for _, _, so_far in iter_frame_scores(
        reader, encoder, text_features, stride, batch_size=batch_size, thumb_size=thumb_size, cancel=cancel
    ):
        scores = so_far
    return [
        RankedFrame(frame_idx, score, reader.info.time_of(frame_idx))
        for frame_idx, score in pick_frames(scores, top_k, min_gap)
    ]


def window_grid(
    width: int, height: int, scales: Sequence[float] = (0.5,), overlap: float = 0.5
) -> list[tuple[int, int, int, int, int]]:
    """Overlapping square windows ``(scale_index, x0, y0, x1, y1)`` covering the frame at each scale.

    A window's side is ``scale · short side``; neighbours overlap by ``overlap`` of a side
    (positions evenly spread, first and last touching the frame's edges).
    """
    windows = []
    short = min(width, height)
    for scale_index, scale in enumerate(scales):
        side = max(1, min(short, round(scale * short)))
        step = max(1.0, side * (1.0 - overlap))

        def starts(length: int, side: int = side, step: float = step) -> np.ndarray:
            count = math.ceil(max(0, length - side) / step) + 1
            return np.linspace(0, length - side, count).round().astype(int)

        for y0 in starts(height):
            for x0 in starts(width):
                windows.append((scale_index, int(x0), int(y0), int(x0) + side, int(y0) + side))
    return windows


@dataclass
class Heatmap:
    """CLIP's "where is the prompt" map: ``values`` on a grid of ``cell×cell``-pixel cells
    covering a ``width×height`` frame."""

    values: np.ndarray  # rows × cols float32
    cell: float  # cell side in frame pixels
    width: int
    height: int

    def peaks(self, count: int, min_distance: float) -> np.ndarray:
        """Up to ``count`` maxima, best first, as an ``N×2`` float array of ``(x, y)`` frame pixels.

        Greedy: take the hottest cell, blank a disc of ``min_distance`` pixels around it, repeat.
        Window scores make flat plateaus; a peak is the centre of its plateau (the cells joined
        to the hottest one that are as hot), not the plateau's first cell.
        """
        heat = self.values.astype(np.float64).copy()
        rows, cols = np.mgrid[0 : heat.shape[0], 0 : heat.shape[1]]
        radius = min_distance / self.cell
        points = []
        for _ in range(count):
            if not np.isfinite(heat).any():
                break
            top = tuple(int(i) for i in np.unravel_index(int(np.argmax(heat)), heat.shape))
            plateau = _plateau(heat, top)
            r, c = float(rows[plateau].mean()), float(cols[plateau].mean())
            x = min((c + 0.5) * self.cell, self.width - 0.5)
            y = min((r + 0.5) * self.cell, self.height - 0.5)
            points.append((x, y))
            heat[((rows - r) ** 2 + (cols - c) ** 2 <= radius * radius) | plateau] = -np.inf
        return np.asarray(points, dtype=np.float32).reshape(-1, 2)


def _plateau(heat: np.ndarray, start: tuple[int, ...]) -> np.ndarray:
    """Cells 4-connected to ``start`` whose value equals it (to float tolerance), as a bool map."""
    level = heat[start]
    same = np.isclose(heat, level, rtol=1e-5, atol=1e-6)
    plateau = np.zeros(heat.shape, bool)
    stack = [start]
    while stack:
        r, c = stack.pop()
        if plateau[r, c] or not same[r, c]:
            continue
        plateau[r, c] = True
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            if 0 <= r + dr < heat.shape[0] and 0 <= c + dc < heat.shape[1]:
                stack.append((r + dr, c + dc))
    return plateau


@timing.stage("heat map")
def clip_heatmap(
    frame: np.ndarray,
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    negative_features: np.ndarray | None = None,
    *,
    scales: Sequence[float] = (0.5,),
    overlap: float = 0.5,
    cells: int = 32,
    negative_weight: float = 1.0,
    batch_size: int = 32,
    thumb_size: int = 224,
) -> Heatmap:
    """Score :func:`window_grid` crops of ``frame`` with CLIP (one batch) and spread the scores.

    Per scale, the windows' scores (``100·crop·text``, through :func:`combine_scores`, so a
    negative prompt cools the map where it matches better) go through a softmax: CLIP's own
    probability, at its logit scale of 100, that each window is the one the prompt describes.
    A cell's value is the probability that the chosen window covers it (the sum over covering
    windows); the map is the mean over scales. Where tied windows overlap, the object is in
    the intersection, which this favours (a plain mean of covering windows' scores instead
    drifts to frame edges, where fewer windows overlap). ``cells`` cells span the long side.
    """
    height, width = frame.shape[:2]
    windows = window_grid(width, height, scales, overlap)
    crops = [resize(frame[y0:y1, x0:x1], thumb_size, thumb_size) for _, x0, y0, x1, y1 in windows]
    features = encode_images(encoder, crops, batch_size)
    scores, _ = combine_scores(features, text_features, negative_features, negative_weight)
    cell = max(width, height) / cells
    rows, cols = math.ceil(height / cell), math.ceil(width / cell)
    centres_y = np.minimum((np.arange(rows) + 0.5) * cell, height - 0.5)
    centres_x = np.minimum((np.arange(cols) + 0.5) * cell, width - 0.5)
    scale_of = np.array([window[0] for window in windows])
    total = np.zeros((rows, cols), np.float64)
    for scale_index in range(len(scales)):
        here = np.flatnonzero(scale_of == scale_index)
        logits = scores[here].astype(np.float64)
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        for i, weight in zip(here, weights, strict=True):
            _, x0, y0, x1, y1 = windows[i]
            ys = (centres_y >= y0) & (centres_y < y1)
            xs = (centres_x >= x0) & (centres_x < x1)
            total[np.ix_(ys, xs)] += weight
    return Heatmap((total / len(scales)).astype(np.float32), cell, width, height)


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise :class:`Cancelled` when ``cancel`` is set (the finder checks between its steps)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("Finding candidates was stopped; the candidates already shown are kept.")
