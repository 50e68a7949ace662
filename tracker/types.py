"""Value types shared by every stage of the pipeline.

Conventions, everywhere in ``tracker``:

* frames are 0-based indices into the decoded (working) video;
* points are ``(x, y)`` in working-video pixels (the decoded frame after rotation and the
  optional ``max_size`` downscale), floats allowed;
* boxes are ``xyxy`` in the same pixels (``xywh`` appears only inside COCO / MOT writers);
* masks are ``H×W`` ``bool`` arrays at working-video resolution;
* images are ``H×W×3`` ``uint8`` RGB.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before any frame is decoded for work.

    ``width``/``height`` are the working size: after rotation metadata is applied and after the
    ``max_size`` downscale. ``source_width``/``source_height`` are the displayed size of the file
    (rotation applied, no downscale). ``timestamps`` holds each frame's presentation time in
    seconds (variable frame rate videos are not evenly spaced).
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    source_width: int
    source_height: int
    rotation: int = 0
    codec: str = ""
    has_audio: bool = False
    timestamps: tuple[float, ...] = ()
    start_frame: int = 0  # index in the file of working frame 0 (a --start trim)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    @property
    def scale(self) -> float:
        """Working size / displayed source size (1.0 when not downscaled)."""
        return self.width / self.source_width if self.source_width else 1.0

    def time_of(self, frame_idx: int) -> float:
        """Presentation time in seconds of working frame ``frame_idx``, relative to frame 0."""
        if self.timestamps and 0 <= frame_idx < len(self.timestamps):
            return self.timestamps[frame_idx] - self.timestamps[0]
        return frame_idx / self.fps if self.fps > 0 else 0.0

    def check_frame(self, frame_idx: int) -> int:
        if not 0 <= frame_idx < self.num_frames:
            raise InputError(
                f"Frame {frame_idx} is outside the video (it has frames 0 to {self.num_frames - 1})."
            )
        return frame_idx


@dataclass
class Candidate:
    """A mask on one frame that CLIP ranked against the prompt.

    ``text_score`` is ``100 · crop_features · text_features`` (minus the negative prompt's share
    when one was given); ``score`` is what candidates are ranked by: the text score, or, once
    the workspace knows what the person chose and rejected, the text score with the exemplar
    terms (:func:`tracker.discovery.exemplars.exemplar_score`). ``text_score`` defaults to
    ``score``. ``frame_score`` is the whole frame's score that got the frame picked.
    ``embedding`` is the crop's CLIP image embedding (unit ``(D,)`` float32, what Find scored;
    None where unknown), kept in memory for the exemplar scores, never exported.
    """

    frame_idx: int
    time: float
    mask: np.ndarray
    box: Box
    score: float
    frame_score: float = 0.0
    negative_score: float | None = None
    area: int = 0
    text_score: float | None = None
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != bool:
            raise ValueError(f"Candidate.mask must be H×W bool, got {self.mask.dtype} {self.mask.shape}")
        if not self.area:
            self.area = int(self.mask.sum())
        if self.text_score is None:
            self.text_score = float(self.score)

    def to_row(self, query: str) -> dict:
        """One row of the retrieval table (JSON/CSV)."""
        x0, y0, x1, y1 = self.box
        return {
            "query": query,
            "frame": self.frame_idx,
            "timestamp": round(self.time, 4),
            "score": round(float(self.score), 4),
            "text_score": round(float(self.score if self.text_score is None else self.text_score), 4),
            "frame_score": round(float(self.frame_score), 4),
            "negative_score": None if self.negative_score is None else round(float(self.negative_score), 4),
            "x0": round(float(x0), 2),
            "y0": round(float(y0), 2),
            "x1": round(float(x1), 2),
            "y1": round(float(y1), 2),
            "area": self.area,
        }


@dataclass
class FramePrompt:
    """What the person told SAM 2 about one object on one frame.

    Points with label 1 are positive (the object), 0 negative (not the object). ``mask`` replaces
    points and box when given (a brushed or accepted candidate mask).
    """

    object_id: int
    frame_idx: int
    points: list[Point] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: Box | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.points) != len(self.labels):
            raise InputError("Each point needs a label (1 = object, 0 = not the object).")
        if any(label not in (0, 1) for label in self.labels):
            raise InputError("Point labels must be 1 (object) or 0 (not the object).")
        if self.mask is not None and (self.mask.ndim != 2 or self.mask.dtype != bool):
            raise ValueError(f"FramePrompt.mask must be H×W bool, got {self.mask.dtype} {self.mask.shape}")

    @property
    def is_empty(self) -> bool:
        return not self.points and self.box is None and (self.mask is None or not self.mask.any())

    def validate(self, width: int, height: int) -> None:
        """Reject prompts that cannot mean anything on a ``width×height`` frame."""
        for x, y in self.points:
            if not (0 <= x < width and 0 <= y < height):
                raise InputError(
                    f"The click at ({x:.0f}, {y:.0f}) is outside the {width}×{height} frame; click on the picture."
                )
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise InputError(
                    "The box has no area: drag from one corner of the object to the opposite one."
                )
        if self.mask is not None:
            if self.mask.shape != (height, width):
                raise InputError(
                    f"The mask is {self.mask.shape[1]}×{self.mask.shape[0]} but the frame is {width}×{height}."
                )
            if not self.mask.any() and not self.points and self.box is None:
                raise InputError("The brushed mask is empty: paint over the object, or click on it instead.")
        if self.labels and not any(self.labels) and self.box is None and self.mask is None:
            raise InputError(
                "Only negative clicks were given: add at least one positive click on the object "
                "(or a box) so SAM 2 knows what to follow."
            )


@dataclass
class TrackedObject:
    """An object the person is following: its id (1-based, stable), name and colour."""

    object_id: int
    name: str
    color: tuple[int, int, int]

    def __post_init__(self) -> None:
        if self.object_id < 1:
            raise ValueError("object ids start at 1 (0 is the background in PNG masks)")


@dataclass
class FrameResult:
    """Every object's mask on one frame, as SAM 2 tracked it.

    ``masks`` is ``N×H×W`` bool (one per id in ``object_ids``) at working-video resolution and
    never overlapping: where objects overlap, the pixel goes to the highest logit. ``scores`` are
    SAM 2's object presence probabilities in ``[0, 1]`` (1.0 where unknown).
    """

    frame_idx: int
    object_ids: tuple[int, ...]
    masks: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.masks.ndim != 3 or self.masks.dtype != bool:
            raise ValueError(
                f"FrameResult.masks must be N×H×W bool, got {self.masks.dtype} {self.masks.shape}"
            )
        if len(self.object_ids) != self.masks.shape[0] or len(self.scores) != len(self.object_ids):
            raise ValueError("FrameResult needs one mask and one score per object id")

    @classmethod
    def from_sam2(
        cls,
        frame_idx: int,
        object_ids: Sequence[int],
        logits: np.ndarray,
        object_scores: Sequence[float] | None = None,
    ) -> FrameResult:
        """From SAM 2's video-resolution mask logits (``N×H×W`` or ``N×1×H×W`` float).

        A pixel belongs to the object with the highest positive logit, so masks never overlap.
        """
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim == 4:
            logits = logits[:, 0]
        if logits.ndim != 3:
            raise ValueError(f"expected N×H×W logits, got shape {logits.shape}")
        n = logits.shape[0]
        if n == 0:
            masks = np.zeros((0,) + logits.shape[1:], dtype=bool)
        else:
            positive = logits > 0
            if n == 1:
                masks = positive
            else:
                winner = logits.argmax(axis=0)
                masks = positive & (winner[None] == np.arange(n)[:, None, None])
        scores = (
            np.ones(n, dtype=np.float32) if object_scores is None else np.asarray(object_scores, np.float32)
        )
        return cls(int(frame_idx), tuple(int(i) for i in object_ids), masks, scores)

    @property
    def height(self) -> int:
        return int(self.masks.shape[1])

    @property
    def width(self) -> int:
        return int(self.masks.shape[2])

    @classmethod
    def empty(cls, frame_idx: int, height: int, width: int) -> FrameResult:
        """No object on ``frame_idx`` of a ``width×height`` video (masks ``0×H×W``)."""
        return cls(int(frame_idx), (), np.zeros((0, height, width), bool), np.zeros(0, np.float32))

    def select(self, object_ids: Collection[int]) -> FrameResult:
        """Only the objects whose id is in ``object_ids``, in this result's order (``self`` when
        nothing is dropped)."""
        keep = [i for i, object_id in enumerate(self.object_ids) if object_id in object_ids]
        if len(keep) == len(self.object_ids):
            return self
        return self._subset(keep)

    def without(self, object_id: int) -> FrameResult:
        """A new result with every object but ``object_id``."""
        return self._subset([i for i, other in enumerate(self.object_ids) if other != object_id])

    def merge(self, other: FrameResult) -> FrameResult:
        """This result's objects, plus ``other``'s objects it lacks, appended in ``other``'s order.

        The first wins pixels: ``other``'s masks lose every pixel one of this result's masks
        holds, so the merged masks still never overlap. ``self`` when ``other`` adds nothing.
        """
        extra = [i for i, object_id in enumerate(other.object_ids) if object_id not in self.object_ids]
        if not extra:
            return self
        taken = self.masks.any(axis=0) if len(self.object_ids) else np.zeros(other.masks.shape[1:], bool)
        masks = np.concatenate([self.masks, other.masks[extra] & ~taken], axis=0)
        object_ids = self.object_ids + tuple(other.object_ids[i] for i in extra)
        scores = np.concatenate([self.scores, other.scores[extra]])
        return FrameResult(self.frame_idx, object_ids, masks, scores)

    def _subset(self, keep: list[int]) -> FrameResult:
        return FrameResult(
            self.frame_idx, tuple(self.object_ids[i] for i in keep), self.masks[keep], self.scores[keep]
        )

    def mask_of(self, object_id: int) -> np.ndarray | None:
        try:
            return self.masks[self.object_ids.index(object_id)]
        except ValueError:
            return None

    def label_map(self) -> np.ndarray:
        """``H×W`` uint8 (uint16 past 255 objects) with the object id per pixel, 0 for background."""
        dtype = np.uint8 if (max(self.object_ids, default=0) <= 255) else np.uint16
        labels = np.zeros((self.height, self.width), dtype=dtype)
        for object_id, mask in zip(self.object_ids, self.masks, strict=True):
            labels[mask] = object_id
        return labels


# A palette that stays readable on most footage; object_id 1 takes PALETTE[0].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
)


def color_for(object_id: int) -> tuple[int, int, int]:
    return PALETTE[(object_id - 1) % len(PALETTE)]
