"""What discovery needs from a detector and from the tracker, so stand-ins and the real models plug in.

Conventions as in :mod:`tracker.types`: frames 0-based, masks ``H×W bool`` at working
resolution, embeddings unit ``(D,)`` float32 CLIP image features, scores on CLIP's 100× scale.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..masks import mask_box
from ..types import Box, FrameResult


@dataclass
class Detection:
    """One candidate on one frame: its mask, its text score and its crop's embedding.

    ``score`` is the text score (``100·crop·text``, lowered by the negative prompt as Find does);
    ``embedding`` the crop's unit CLIP image feature (None when the detector has none).
    """

    mask: np.ndarray
    score: float
    embedding: np.ndarray | None = None
    box: Box | None = field(default=None)

    def __post_init__(self) -> None:
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.box is None:
            self.box = mask_box(self.mask)


@runtime_checkable
class Detector(Protocol):
    """Finds the prompt on one frame.

    ``detect(frame_idx, frame, covered=None)`` returns the frame's candidates (any order; the
    threshold is discovery's business, not the detector's). ``covered``, when given, is the
    masks tracked on that frame (``N×H×W`` bool, :attr:`tracker.types.FrameResult.masks`): a
    detector may skip work inside them, but must still return every candidate a tracked mask
    does not explain (and, for each tracked object, its best-overlapping candidate, which
    teaches the object's exemplars); one that ignores it is correct too. ``embed(frame,
    masks)`` returns ``N×D`` unit embeddings of the masks' crops (to teach exemplars).
    """

    def detect(
        self, frame_idx: int, frame: np.ndarray, covered: np.ndarray | None = None
    ) -> list[Detection]: ...

    def embed(self, frame: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray: ...


@runtime_checkable
class ObjectTracker(Protocol):
    """What discovery asks of the tracker while a run is paused after ``frame_idx``.

    * ``add_object(object_id, frame_idx, mask)``: prompt ``object_id`` (new or known) with
      ``mask`` on the frame just tracked; return the frame's result with every object.
    * ``track_object(object_id, start_frame, last_frame)``: track only ``object_id`` from
      ``start_frame`` (exclusive) to ``last_frame`` (inclusive), backward when ``last_frame`` is
      before it, forward when after (discovery tracks *behind* the run: back in a forward
      run); one result per frame holding just that object; the caller may stop early
      (closing the iterator).
    * ``remove_object(object_id)``: forget an object added by ``add_object``.
    """

    def add_object(self, object_id: int, frame_idx: int, mask: np.ndarray) -> FrameResult: ...

    def track_object(
        self, object_id: int, start_frame: int, last_frame: int
    ) -> Generator[FrameResult, None, None]: ...

    def remove_object(self, object_id: int) -> None: ...
