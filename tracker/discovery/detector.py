"""The real detector and tracker for discovery: Find's machinery on one frame, SAM 2's session.

:class:`ClipDetector` is Find on one frame: SAM 2 point proposals (a sparse grid; the frame's
backbone features come from the tracking session when it has them, so a check never encodes a
frame twice) → CLIP crop scores with the negative prompt (:func:`tracker.candidates.combine_scores`,
the score Find ranks by) → one detection per instance (mask-IoU suppression). It keeps the
crops' CLIP embeddings, which the exemplars use. :class:`SessionTracker` is the
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
from ..masks import mask_iou
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
    ``reused`` / ``encoded`` count checks that reused the tracker's features / encoded the frame.
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
        self.reused = 0
        self.encoded = 0

    def detect(self, frame_idx: int, frame: np.ndarray) -> list[Detection]:
        backbone = self.features(frame_idx) if self.features is not None else None
        with self._model_work():
            if backbone is not None and getattr(self.proposer, "uses_points", False):
                proposals = self.proposer(frame, None, backbone=backbone)
                self.reused += 1
            else:
                proposals = self.proposer(frame, None)
                self.encoded += 1
        pixels = float(frame.shape[0] * frame.shape[1])
        masks = [
            p.mask
            for p in proposals
            if self.min_area_fraction * pixels <= int(p.mask.sum()) <= self.max_area_fraction * pixels
        ]
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

    def _model_work(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        if self.model_lock is not None:
            stack.enter_context(self.model_lock)
        if self.autocast is not None:
            stack.enter_context(self.autocast())
        return stack


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
