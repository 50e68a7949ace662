"""What shapes discovery: how often it looks, what counts as a new object, and the limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InputError

#: Frames between two discovery checks by default. One check costs about one Find on one frame
#: without encoding it again (point proposals from the tracker's backbone features + CLIP crop
#: scores): 0.46 s on a 2-core CPU at the CPU default, against 0.44 s a tracked frame, so every
#: 20 frames adds about 5 % to tracking (benchmarks/README.md, "discovery"). Confirming a new
#: object also tracks it back over up to one interval.
DEFAULT_EVERY = 20


def on_by_default(random_weights: bool) -> bool:
    """Whether discovery runs when nobody chose (``Settings.discover`` None): everywhere it is
    affordable, which is everywhere it runs — at :data:`DEFAULT_EVERY` it adds about 5 % to
    tracking at the CPU default (+19 % at the ``fast`` preset's 256-pixel frames, where a
    tracked frame is cheaper), inside the 25 % we allow — except on random weights: untrained
    CLIP scores are noise, so every check would "find" noise (ask for it with ``--discover``).
    The web app on ZeroGPU turns it off (not available there)."""
    return not random_weights


@dataclass(frozen=True)
class DiscoveryConfig:
    """Discovery's knobs; every score is on CLIP's 100× cosine scale.

    * ``every``: run a check every ``every`` frames of the forward run (counted from its first
      frame); a check also runs on the frame a tracked object has been empty for
      ``lost_after`` frames.
    * ``threshold``: a candidate not covered by a tracked object is a *sighting* when its
      score (text score plus the exemplar terms, :func:`~tracker.discovery.exemplars.exemplar_score`)
      reaches this.
    * Confirmation rule: a sighting becomes an object only when it is seen again at the next
      check **and**, tracked back from there, lands on the first sighting (mask IoU at least
      ``confirm_iou`` on the earlier check's frame). A one-frame false hit has no second
      sighting; two different things seen at two checks fail the backward test.
      ``max_verify`` caps the backward verifications per check (each costs ``every`` frames
      of tracking for one object).
    * ``match_iou`` / ``match_cover``: a candidate is already tracked when its IoU with a
      tracked mask reaches ``match_iou`` or that mask covers ``match_cover`` of it (a part).
    * ``entry_gap``: tracking a new object backward stops after this many empty frames in a
      row (where it entered the video); ``max_backfill`` caps those frames (None: to frame 0).
    * Lost and found: an object empty for ``lost_after`` frames is *lost*; until
      ``keep_alive`` frames after it was last seen, a candidate whose appearance matches its
      own exemplars (similarity at least ``reacquire_similarity``) gets its id back.
    * ``max_objects``: the total number of objects (those already there included); discovery
      stops adding at the cap and says so. None: no cap.
    * ``confident_score``: a tracked frame teaches an object's exemplar when SAM 2's
      presence probability reaches this and a candidate matches the mask with IoU
      ``exemplar_iou``.
    * ``skip_covered``: hand the detector the frame's tracked masks, so it skips the work inside
      them (:class:`~tracker.discovery.detector.ClipDetector`: grid points inside a tracked
      mask are not decoded, proposals a tracked mask covers are not cropped for CLIP). Off:
      every check looks at the whole frame (what the benchmark compares against).
    """

    every: int = DEFAULT_EVERY
    threshold: float = 24.0
    confirm_iou: float = 0.5
    max_verify: int = 2
    match_iou: float = 0.4
    match_cover: float = 0.6
    entry_gap: int = 3
    max_backfill: int | None = None
    lost_after: int = 5
    keep_alive: int = 150
    reacquire_similarity: float = 85.0
    max_objects: int | None = None
    confident_score: float = 0.8
    exemplar_iou: float = 0.7
    skip_covered: bool = True

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise InputError(f"Discovery needs a check interval of at least 1 frame, got {self.every}.")
        if self.max_objects is not None and int(self.max_objects) < 1:
            raise InputError(f"max_objects must be at least 1, got {self.max_objects}.")
        for name in ("lost_after", "keep_alive", "entry_gap", "max_verify"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"Discovery's {name} must be at least 1, got {getattr(self, name)}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DiscoveryConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in (data or {}).items() if key in names})
