"""Text-prompted video tracking: CLIP finds what you describe, SAM 2 follows it.

A UI-free library. Importing it is cheap (no torch, no models, no side effects); the heavy
pieces load when first used::

    from tracker import Settings, Workspace
    from tracker.models import ModelHub

    with Workspace.open("clip.mp4", ModelHub(), Settings(), workdir="work/") as ws:
        for event in ws.find_candidates("red shoes"):
            logging.info(event.message)
        ws.accept_candidate(0)
        for event in ws.track():
            pass
        ws.export("out/")

The same run without a person in the loop, in one call (what ``python -m tracker track`` does):
``tracker.pipeline.track_video("clip.mp4", "out/", Settings(), "red shoes")``. Many videos on
Ray workers (what ``python -m tracker batch`` does):
``tracker.batch.run(tracker.batch.discover(["clips/"], "red shoes"), "out/", Settings())``.
"""

from __future__ import annotations

from .errors import (
    Cancelled,
    InputError,
    NoCandidates,
    ProjectError,
    TrackerError,
    VideoError,
    WeightsUnavailable,
)
from .settings import Settings
from .types import Candidate, FramePrompt, FrameResult, TrackedObject, VideoInfo
from .workspace import FindEvent, TrackEvent, Workspace

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "Candidate",
    "FindEvent",
    "FramePrompt",
    "FrameResult",
    "InputError",
    "NoCandidates",
    "ProjectError",
    "Settings",
    "TrackEvent",
    "TrackedObject",
    "TrackerError",
    "VideoError",
    "VideoInfo",
    "WeightsUnavailable",
    "Workspace",
    "__version__",
]
