"""What the UI needs of a workspace: :class:`WorkspaceLike` (and of its results, :class:`StoreLike`).

The app drives a :class:`tracker.workspace.Workspace`; the fast UI tests drive
``tests.standin_workspace.StandInWorkspace`` (fake masks, no models). Both satisfy these protocols,
and ``tests/test_workspace_protocol.py`` keeps the three in step: every member here has the same
signature in the real workspace and in the stand-in, and every workspace member that ``ui/`` reads
is declared here. Add a member here before the UI uses it.

Signatures are written exactly as :class:`~tracker.workspace.Workspace` writes them (the
conformance test compares them as text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: importing tracker.workspace here would load more than the UI needs
    import threading
    from collections.abc import Iterator
    from pathlib import Path

    import numpy as np

    from tracker.discovery import Discovery, DiscoveryConfig, FoundRecord
    from tracker.flags import Flag
    from tracker.settings import Settings
    from tracker.types import Box, Candidate, FramePrompt, FrameResult, TrackedObject, VideoInfo
    from tracker.workspace import FindEvent, TrackEvent


class StoreLike(Protocol):
    """The slice of :class:`tracker.results.ResultStore` the UI and :mod:`tracker.flags` read."""

    def __len__(self) -> int: ...

    def get(self, frame_idx: int) -> FrameResult | None: ...

    def frames(self) -> list[int]: ...

    def mask(self, frame_idx: int, object_id: int) -> np.ndarray | None: ...

    @property
    def object_ids(self) -> list[int]: ...


class WorkspaceLike(Protocol):
    """The members of :class:`tracker.workspace.Workspace` that ``ui/`` (and the pipeline it calls) use."""

    info: VideoInfo
    settings: Settings
    objects: dict[int, TrackedObject]
    candidates: list[Candidate]
    prompt_text: str
    store: StoreLike
    last_overlay: Path | None
    last_retrack_frames: list[int]
    found: list[FoundRecord]
    last_discovery: Discovery | None

    def close(self) -> None: ...

    # frames and candidates
    def frame(self, frame_idx: int) -> np.ndarray: ...

    def find_candidates(
        self, prompt: str, negative_prompt: str | None = None, cancel: threading.Event | None = None
    ) -> Iterator[FindEvent]: ...

    def best_candidates(self, max_objects: int = 1) -> list[int]: ...

    def accept_best(self, max_objects: int = 1) -> list[TrackedObject]: ...

    def accept_candidate(self, index: int, object_id: int | None = None) -> FrameResult: ...

    def reject_candidate(self, index: int) -> list[int]: ...

    def more_like(self, object_id: int) -> list[int]: ...

    # objects and prompts
    def add_object(
        self, name: str | None = None, color: tuple[int, int, int] | None = None
    ) -> TrackedObject: ...

    def add_click(
        self, object_id: int, frame_idx: int, x: float, y: float, positive: bool = True
    ) -> FrameResult: ...

    def set_box(self, object_id: int, frame_idx: int, box: Box) -> FrameResult: ...

    def set_mask(self, object_id: int, frame_idx: int, mask: np.ndarray) -> FrameResult: ...

    def clear_frame(self, frame_idx: int, object_id: int | None = None) -> FrameResult: ...

    def remove_object(self, object_id: int) -> None: ...

    def rename_object(self, object_id: int, name: str) -> None: ...

    def undo(self) -> bool: ...

    def redo(self) -> bool: ...

    def prompts(self) -> list[FramePrompt]: ...

    def prompted_frames(self) -> list[int]: ...

    # results
    def result_at(self, frame_idx: int) -> FrameResult | None: ...

    def preview(self, frame_idx: int, with_trails: bool = True) -> np.ndarray: ...

    def track(
        self,
        start_frame: int | None = None,
        end_frame: int | None = None,
        direction: str = "both",
        cancel: threading.Event | None = None,
        overlay_path: Path | None = None,
        discover: DiscoveryConfig | None = None,
    ) -> Iterator[TrackEvent]: ...

    def found_records(self) -> list[FoundRecord]: ...

    def retrack(
        self,
        frame_idx: int,
        object_ids: list[int] | None = None,
        *,
        agree_iou: float = 0.9,
        agree_frames: int = 8,
        max_frames: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[TrackEvent]: ...

    def flags(self, with_clip: bool = True, every_seconds: float = 0.5) -> list[Flag]: ...

    def import_annotations(self, path: Path) -> list[TrackedObject]: ...

    # files
    def render_overlay(self, path: Path | None = None) -> Path: ...

    def export(
        self, out_dir: Path, formats: list[str] | None = None, *, flags: list[Flag] | None = None
    ) -> dict[str, Path]: ...

    def save_project(self, path: Path) -> Path: ...

    def load_project(self, path: Path) -> None: ...


__all__ = ["StoreLike", "WorkspaceLike"]
