"""How a find runs: :class:`FinderOptions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..settings import Settings


@dataclass
class FinderOptions:
    """How a find runs. ``None`` means "derive from the video" (stride, min_gap)."""

    stride: int | None = None  # rank every Nth frame; None = about 2 frames a second
    top_frames: int = 3  # frames that get masks
    min_gap: int | None = None  # frames between two chosen frames; None = max(2·stride, 1 s)
    threshold: float = 20.0  # minimum candidate score (100·cos)
    take_best: bool = False  # nothing passes → return the best anyway instead of NoCandidates
    random_weights: bool = False  # models are untrained: ignore the threshold, warn
    per_frame: int = 4  # best candidates kept per frame after overlap suppression
    overlap_iou: float = 0.5  # same-frame candidates overlapping more are one instance
    negative_weight: float = 1.0  # w in s_pos − w·softplus(s_neg − s_pos)
    min_area_fraction: float = 0.001  # masks smaller than this share of the frame are dropped
    max_area_fraction: float = 0.95  # … and larger than this
    margin: float = 0.15  # crop margin, a fraction of the mask box's width / height per side
    dim: float = 0.6  # how far outside-mask pixels are blended towards grey (0 keeps them, 1 = grey)
    heat_scales: tuple[float, ...] = (0.5,)  # window sides as a fraction of the short side
    heat_overlap: float = 0.5
    heat_peaks: int = 5  # point prompts taken from CLIP's heat map
    batch_size: int = 32  # images per CLIP call
    thumb_size: int = 224  # CLIP input side; ranking thumbnails are kept at this size

    def __post_init__(self) -> None:
        if self.stride is not None and self.stride < 1:
            raise InputError(f"The stride must be at least 1 frame, got {self.stride}.")
        if self.top_frames < 1:
            raise InputError(f"At least one frame must get masks, got top_frames={self.top_frames}.")
        if not 0.0 <= self.dim <= 1.0:
            raise InputError(f"dim must be between 0 and 1, got {self.dim}.")
        if self.margin < 0:
            raise InputError(f"The crop margin cannot be negative, got {self.margin}.")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FinderOptions:
        """From a run's :class:`~tracker.settings.Settings`; settings left at None keep this
        class's defaults, and keyword ``overrides`` (None: the default) win over both."""
        values: dict[str, Any] = {
            "stride": settings.stride,
            "top_frames": settings.top_frames,
            "threshold": settings.threshold,
            "take_best": settings.take_best,
            "random_weights": settings.random_weights,
            "overlap_iou": settings.overlap_iou,
            "per_frame": max(cls.per_frame, settings.max_objects or 1),
        }
        values.update(overrides)
        return cls(**{name: value for name, value in values.items() if value is not None})

    def scoring(self) -> dict[str, Any]:
        """The keywords of :func:`~tracker.candidates.scoring.score_masks` these options set."""
        return {
            "margin": self.margin,
            "dim": self.dim,
            "negative_weight": self.negative_weight,
            "min_area_fraction": self.min_area_fraction,
            "max_area_fraction": self.max_area_fraction,
            "batch_size": self.batch_size,
            "thumb_size": self.thumb_size,
        }
