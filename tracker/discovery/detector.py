"""The real detector and tracker for discovery: Find's machinery on one frame, SAM 2's session.

:class:`ClipDetector` is Find on one frame: SAM 2 point proposals (a sparse grid; the frame's
backbone features come from the tracking session when it has them, so a check never encodes a
frame twice) → CLIP crop scores with the negative prompt (:func:`tracker.candidates.combine_scores`,
the score Find ranks by) → one detection per instance (mask-IoU suppression). It keeps the
crops' CLIP embeddings, which the exemplars use.

Given the frame's tracked masks (``covered``), it skips the work they make useless: grid points
lying inside a tracked mask (``margin`` pixels in from its edge) are not decoded — such a point
would mostly propose that object again — except one per object (the one nearest its centroid),
whose masks are what teaches the object's exemplars; and proposals a single tracked mask covers
(``skip_cover`` of their pixels, above discovery's own ``match_cover``, so the controller would
have matched them to that object anyway) get no CLIP crop, except each object's best-overlapping
proposal. Points beside a tracked object and proposals sticking out of it are all kept, so
nothing can hide a new object next to a tracked one. :class:`SessionTracker` is the
:class:`~tracker.discovery.protocols.ObjectTracker` over a
:class:`tracker.session.TrackingSession` (its ``add_mask_mid_run``, ``track_object``,
``remove_object_mid_run``). Imports torch through the session and the proposer only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np

from ..candidates import combine_scores, crop_features, encode_prompt
from ..masks import mask_centroid, mask_iou
from ..types import FrameResult
from .protocols import Detection

logger = logging.getLogger(__name__)


class ClipDetector:
    """Find on one frame (see the module docstring); a :class:`~tracker.discovery.protocols.Detector`.

    ``encoder`` is the CLIP model (:class:`tracker.candidates.TextImageEncoder`), ``proposer`` a
    mask proposer (``proposer(frame, None, backbone=…)`` when it takes backbone features, as
    :class:`tracker.candidates.PointPromptProposer` does). ``features(frame_idx)`` returns the
    session's cached backbone output for that frame or None. ``model_lock`` is held around model
    work, ``autocast`` (a zero-argument context factory) entered around the proposer.
    ``reused`` / ``encoded`` count checks that reused the tracker's features / encoded the frame;
    ``points`` / ``skipped_points`` the grid points decoded / left out inside tracked masks, and
    ``crops`` / ``skipped_crops`` the proposals scored by CLIP / left out as covered (see the
    module docstring; ``skip_covered=False`` turns skipping off, ``margin`` is a fraction of the
    frame's short side).
    """

    def __init__(
        self,
        encoder: Any,
        proposer: Any,
        prompt: str,
        negative: str | None = None,
        *,
        features: Callable[[int], dict[str, Any] | None] | None = None,
        model_lock: threading.Lock | None = None,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        overlap_iou: float = 0.5,
        min_area_fraction: float = 0.001,
        max_area_fraction: float = 0.95,
        max_detections: int = 16,
        skip_covered: bool = True,
        skip_cover: float = 0.9,
        margin: float = 0.02,
    ) -> None:
        self.encoder = encoder
        self.proposer = proposer
        self.text = encode_prompt(encoder, prompt)
        self.negative = encode_prompt(encoder, negative) if negative else None
        self.features = features
        self.model_lock = model_lock
        self.autocast = autocast
        self.overlap_iou = overlap_iou
        self.min_area_fraction = min_area_fraction
        self.max_area_fraction = max_area_fraction
        self.max_detections = max_detections
        self.skip_covered = skip_covered
        self.skip_cover = skip_cover
        self.margin = margin
        self.reused = 0
        self.encoded = 0
        self.points = self.skipped_points = 0
        self.crops = self.skipped_crops = 0

    def detect(self, frame_idx: int, frame: np.ndarray, covered: np.ndarray | None = None) -> list[Detection]:
        tracked = _tracked(covered, frame.shape[:2]) if self.skip_covered else []
        backbone = self.features(frame_idx) if self.features is not None else None
        uses_points = bool(getattr(self.proposer, "uses_points", False))
        options: dict[str, Any] = {}
        if uses_points and hasattr(self.proposer, "grid_points"):
            options = {"grid": False, "points": self._grid(frame, tracked)}
        with self._model_work():
            if backbone is not None and uses_points:
                proposals = self.proposer(frame, backbone=backbone, **options)
                self.reused += 1
            else:
                proposals = self.proposer(frame, **options)
                self.encoded += 1
        pixels = float(frame.shape[0] * frame.shape[1])
        masks = [
            p.mask
            for p in proposals
            if self.min_area_fraction * pixels <= int(p.mask.sum()) <= self.max_area_fraction * pixels
        ]
        worth = uncovered(masks, tracked, self.skip_cover)
        self.skipped_crops += len(masks) - len(worth)
        masks = [masks[i] for i in worth]
        self.crops += len(masks)
        if not masks:
            return []
        embeddings = crop_features(frame, masks, self.encoder)
        scores, _ = combine_scores(embeddings, self.text, self.negative)
        ranked = sorted(
            (
                Detection(mask, float(score), embedding)
                for mask, score, embedding in zip(masks, scores, embeddings, strict=True)
            ),
            key=lambda d: -d.score,
        )
        kept: list[Detection] = []
        for detection in ranked:
            if all(
                mask_iou(detection.mask, other.mask, empty=0.0, box_a=detection.box, box_b=other.box)
                <= self.overlap_iou
                for other in kept
            ):
                kept.append(detection)
        return kept[: self.max_detections]

    def embed(self, frame: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
        return crop_features(frame, [np.asarray(m, bool) for m in masks], self.encoder)

    def _grid(self, frame: np.ndarray, tracked: list[np.ndarray]) -> np.ndarray:
        """The proposer's grid points to decode: those inside a tracked mask left out, but one
        per object kept (counted in ``points`` / ``skipped_points``)."""
        height, width = frame.shape[:2]
        grid = np.asarray(self.proposer.grid_points(width, height), np.float32).reshape(-1, 2)
        keep = np.ones(len(grid), bool)
        if tracked and len(grid):
            union = np.logical_or.reduce(tracked)
            margin = max(1, round(self.margin * min(height, width)))
            inside = points_inside(grid, union, margin)
            keep = ~inside
            for mask in tracked:
                mine = np.flatnonzero(inside & points_inside(grid, mask, 0))
                if len(mine):
                    centre = np.array(mask_centroid(mask) or (0.0, 0.0), np.float32)
                    keep[mine[np.argmin(np.linalg.norm(grid[mine] - centre, axis=1))]] = True
        self.points += int(keep.sum())
        self.skipped_points += int((~keep).sum())
        return grid[keep]

    def _model_work(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        if self.model_lock is not None:
            stack.enter_context(self.model_lock)
        if self.autocast is not None:
            stack.enter_context(self.autocast())
        return stack


def _tracked(covered: np.ndarray | None, size: tuple[int, ...]) -> list[np.ndarray]:
    """The non-empty tracked masks of ``covered`` (``N×H×W`` or ``H×W``) at the frame's size."""
    if covered is None:
        return []
    stack = np.asarray(covered, bool)
    stack = stack[None] if stack.ndim == 2 else stack
    if stack.ndim != 3 or tuple(stack.shape[1:]) != tuple(size[:2]):
        return []
    return [mask for mask in stack if mask.any()]


def points_inside(points: np.ndarray, mask: np.ndarray, margin: int) -> np.ndarray:
    """Which ``(x, y)`` points lie inside ``mask`` with ``margin`` pixels to spare left, right,
    up and down (the offsets clipped to the frame: an object cut by the frame's edge counts)."""
    height, width = mask.shape
    xs = np.clip(points[:, 0].astype(int), 0, width - 1)
    ys = np.clip(points[:, 1].astype(int), 0, height - 1)
    inside = mask[ys, xs]
    for dx, dy in ((margin, 0), (-margin, 0), (0, margin), (0, -margin)):
        inside &= mask[np.clip(ys + dy, 0, height - 1), np.clip(xs + dx, 0, width - 1)]
    return inside


def uncovered(masks: Sequence[np.ndarray], tracked: Sequence[np.ndarray], cover: float) -> list[int]:
    """Indices of ``masks`` worth a CLIP crop: all but those a single tracked mask covers at
    least ``cover`` of; each tracked mask's best-IoU proposal is kept all the same (it teaches
    that object's exemplars, as :func:`~tracker.discovery.matching.match_tracked` picks it)."""
    if not tracked or not masks:
        return list(range(len(masks)))
    areas = np.array([int(m.sum()) for m in masks], np.float64)
    keep = np.ones(len(masks), bool)
    for mask in tracked:
        inter = np.array([int((m & mask).sum()) for m in masks], np.float64)
        keep &= inter < cover * np.maximum(areas, 1)
        iou = inter / np.maximum(areas + float(mask.sum()) - inter, 1)
        if iou.max() > 0:
            keep[int(np.argmax(iou))] = True
    return [int(i) for i in np.flatnonzero(keep)]


class SessionTracker:
    """The :class:`~tracker.discovery.protocols.ObjectTracker` over a ``TrackingSession``.

    ``prompts`` keeps each mask it was given, ``{(object_id, frame): mask}``, so the caller can
    record them (a project replays them).
    """

    def __init__(self, session: Any, cancel: threading.Event | None = None) -> None:
        self.session = session
        self.cancel = cancel
        self.prompts: dict[tuple[int, int], np.ndarray] = {}

    def add_object(self, object_id: int, frame_idx: int, mask: np.ndarray) -> FrameResult:
        result = self.session.add_mask_mid_run(object_id, frame_idx, mask)
        self.prompts[(int(object_id), int(frame_idx))] = np.asarray(mask, bool)
        return result

    def track_object(
        self, object_id: int, start_frame: int, last_frame: int
    ) -> Generator[FrameResult, None, None]:
        yield from self.session.track_object(object_id, start_frame, last_frame, cancel=self.cancel)

    def remove_object(self, object_id: int) -> None:
        self.session.remove_object_mid_run(object_id)
        for key in [key for key in self.prompts if key[0] == object_id]:
            del self.prompts[key]
