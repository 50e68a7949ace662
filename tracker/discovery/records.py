"""How each object was found: the record a run summary, the review flags and the project keep."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Kind = Literal["accepted", "discovered", "reacquired"]
KINDS: tuple[str, ...] = ("accepted", "discovered", "reacquired")


@dataclass(frozen=True)
class FoundRecord:
    """One moment an object was found.

    ``kind``: ``"accepted"`` (a person accepted a candidate or clicked it), ``"discovered"``
    (discovery confirmed a new object on ``frame``), ``"reacquired"`` (a lost object got its id
    back on ``frame``). ``score`` is the candidate's score there (CLIP's 100× scale, exemplar
    terms included; None for a click). ``first_frame`` is the far end of tracking it behind
    the run: where it entered the video (found while tracking forward) or left it (found
    while tracking backward), ``similarity`` the exemplar similarity that decided
    a re-acquisition. Frames are 0-based.
    """

    object_id: int
    kind: Kind
    frame: int
    score: float | None = None
    first_frame: int | None = None
    similarity: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {KINDS}")

    def describe(self, fps: float | None = None, name: str | None = None) -> str:
        """One line for people, e.g. ``"#3 found at 0:07, score 27.4"`` (``"#3 (dog 3) found at …"``
        with the object's ``name``)."""
        when = clock(self.frame, fps) if fps else f"frame {self.frame}"
        verb = {"accepted": "accepted at", "discovered": "found at", "reacquired": "found again at"}[
            self.kind
        ]
        score = "" if self.score is None else f", score {self.score:.1f}"
        who = f"#{self.object_id}" if not name else f"#{self.object_id} ({name})"
        return f"{who} {verb} {when}{score}"

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoundRecord:
        return cls(
            int(data["object_id"]),
            data["kind"],
            int(data["frame"]),
            None if data.get("score") is None else float(data["score"]),
            None if data.get("first_frame") is None else int(data["first_frame"]),
            None if data.get("similarity") is None else float(data["similarity"]),
        )


def clock(frame: int, fps: float) -> str:
    """``frame`` as ``m:ss`` at ``fps``."""
    seconds = int(frame / fps) if fps > 0 else 0
    return f"{seconds // 60}:{seconds % 60:02d}"
