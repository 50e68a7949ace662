"""The headless run in one call: open → find → accept the best → track → export (flags included).

:func:`track_video` is the one definition of a run without a person in the loop. The command
line (``python -m tracker track``), the web app's public ``/track`` endpoint and the batch
command all call it, so for the same input they write the same files::

    from tracker.pipeline import track_video
    from tracker.settings import Settings

    summary = track_video("clip.mp4", "out/", Settings(preset="fast"), "red shoes",
                          progress=lambda event: logging.info("%s", event.message))
    summary.files["zip"]          # out/annotations.zip
    json.dumps(summary.to_dict())  # what was chosen, written and flagged, and how long it took

Stages, in order, each reported through ``progress`` as :class:`RunEvent` s:

* ``"open"``: probe the video, resolve the settings for the device, check its length;
* ``"find"``: rank frames against the prompt, then start one object from each of the best
  distinct candidates (:meth:`Workspace.best_candidates`); skipped when a project is given,
  whose objects and prompts are replayed instead;
* ``"track"``: both legs (backward from the earliest prompt, then forward), the overlay mp4
  written in frame order;
* ``"export"``: the doubtful frames (:meth:`Workspace.flags`), then every format of
  :data:`tracker.export.FORMATS` (or ``formats``) and the zip of them, flags included.

A stop (``cancel`` set, or Ctrl+C, i.e. ``KeyboardInterrupt``, while tracking) keeps what was
tracked and still exports it; the summary says ``cancelled``. A stop before tracking starts
raises :class:`~tracker.errors.Cancelled`. Problems a person can fix (not a video, nothing
matched the prompt, missing weights, a video longer than ``limit``) raise
:class:`~tracker.errors.TrackerError` s with one-sentence messages, before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import Cancelled, InputError
from .settings import Settings

if TYPE_CHECKING:
    from .discovery import FoundRecord
    from .flags import Flag
    from .models import ModelHub
    from .types import Candidate, VideoInfo
    from .workspace import Workspace

logger = logging.getLogger(__name__)

Stage = Literal["open", "find", "track", "export"]
STAGES: tuple[str, ...] = ("open", "find", "track", "export")
# The summary keeps the best candidates' numbers (not their masks; all of them are in the export).
SUMMARY_CANDIDATES = 20
# (video, settings, workdir) → an opened workspace; e.g. ``ui.services.Services.open_workspace``.
OpenWorkspace = Callable[[Path, Settings, Path], "Workspace"]


@dataclass(frozen=True)
class LengthLimit:
    """The longest video a run accepts (``None`` or 0: no limit), and what to say when it is longer.

    ``fix`` ends the one-sentence refusal: what the person can do, in the words of the caller
    (a command-line option, an upload limit).
    """

    max_frames: int | None = None
    max_seconds: float | None = None
    fix: str = "trim it to the part you need"

    def check(self, info: VideoInfo) -> None:
        """Raise :class:`~tracker.errors.VideoError` if ``info`` is longer than the limit."""
        from .video import check_length

        check_length(info, max_frames=self.max_frames, max_seconds=self.max_seconds, fix=self.fix)


@dataclass(frozen=True)
class VideoFacts:
    """The working video: ``frames`` at ``fps``, ``width``×``height`` (after rotation and downscale)."""

    frames: int
    fps: float
    width: int
    height: int
    source_width: int
    source_height: int

    @classmethod
    def from_info(cls, info: VideoInfo) -> VideoFacts:
        return cls(
            info.num_frames, float(info.fps), info.width, info.height, info.source_width, info.source_height
        )


@dataclass(frozen=True)
class CandidateRow:
    """One ranked candidate without its mask: 1-based ``rank``, 0-based ``frame``, ``box`` xyxy."""

    rank: int
    frame: int
    time: float
    score: float
    box: tuple[float, float, float, float]

    @classmethod
    def from_candidate(cls, rank: int, candidate: Candidate) -> CandidateRow:
        box = tuple(float(v) for v in candidate.box)
        return cls(rank, int(candidate.frame_idx), float(candidate.time), float(candidate.score), box)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChosenObject:
    """An object the run tracked and how it was chosen.

    ``chosen`` is ``"candidate"`` (started from the candidate of rank ``rank``, whose CLIP
    ``score`` it keeps), ``"project"`` (its prompts came from the project file) or
    ``"discovered"`` (found while tracking, with its ``score``; ``first_frame`` is where it
    entered the video). ``first_frame`` is its earliest prompted frame (0-based).
    """

    object_id: int
    name: str
    chosen: Literal["candidate", "project", "discovered"]
    first_frame: int | None
    rank: int | None = None
    score: float | None = None


@dataclass
class RunSummary:
    """What a run did; :meth:`to_dict` is JSON-ready (paths as strings, flags as dicts).

    ``settings`` are the resolved ones (every preset value filled in); ``candidates`` the best
    :data:`SUMMARY_CANDIDATES` of ``num_candidates``; ``files`` output name → path as
    :meth:`Workspace.export` returns it (the zip last); ``flags`` every doubtful frame (also in
    ``flags.json`` when that format was written); ``timings`` seconds per stage plus
    ``"total"``; ``frames_tracked`` frames propagated in this run (fewer than
    ``video.frames`` when ``cancelled``). With discovery on (``settings.discover``), ``found``
    lists how each object was found (:class:`tracker.discovery.FoundRecord`: accepted,
    discovered, re-acquired) and ``discovery`` the checks: ``checks``, ``every``,
    ``seconds_per_check``, ``seconds``, ``reused_features``, ``decoded_points`` /
    ``skipped_points`` and ``cropped`` / ``skipped_crops`` (grid points decoded and CLIP crops
    scored, and those left out inside tracked objects; None for a detector that does not count
    them), ``max_objects``, ``capped``.
    """

    video: Path
    settings: Settings
    device: str = ""
    info: VideoFacts | None = None
    prompt: str | None = None
    negative: str | None = None
    project: Path | None = None
    num_candidates: int = 0
    candidates: list[CandidateRow] = field(default_factory=list)
    objects: list[ChosenObject] = field(default_factory=list)
    frames_tracked: int = 0
    cancelled: bool = False
    files: dict[str, Path] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    found: list[FoundRecord] = field(default_factory=list)
    discovery: dict[str, Any] | None = None

    @property
    def random_weights(self) -> bool:
        """True when the models had untrained weights: the masks are meaningless."""
        return bool(self.settings.random_weights)

    @property
    def num_flags(self) -> int:
        return len(self.flags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": str(self.video),
            "prompt": self.prompt,
            "negative": self.negative,
            "project": None if self.project is None else str(self.project),
            "settings": self.settings.to_dict(),
            "device": self.device,
            "random_weights": self.random_weights,
            "video_info": None if self.info is None else dataclasses.asdict(self.info),
            "num_candidates": self.num_candidates,
            "candidates": [dataclasses.asdict(row) for row in self.candidates],
            "objects": [dataclasses.asdict(obj) for obj in self.objects],
            "frames_tracked": self.frames_tracked,
            "cancelled": self.cancelled,
            "files": {name: str(path) for name, path in self.files.items()},
            "num_flags": self.num_flags,
            "flags": [flag.to_dict() for flag in self.flags],
            "timings": {stage: round(seconds, 3) for stage, seconds in self.timings.items()},
            "found": [record.to_dict() for record in self.found],
            "discovery": self.discovery,
        }


@dataclass(frozen=True)
class RunEvent:
    """Progress of :func:`track_video`: small and picklable, to print or forward to a driver.

    ``fraction`` runs 0..1 within ``stage``; ``message`` is one line for people. While tracking,
    ``frame`` is the frame just done and ``done``/``total`` count the run's frames
    (``eta_seconds`` is the time left); while finding, ``frame`` is the frame whose candidates
    just arrived. The last event of a stage has ``finished`` set and carries the ``summary``
    so far (the same object the run returns, filled up to that stage).
    """

    stage: Stage
    fraction: float
    message: str
    frame: int | None = None
    done: int | None = None
    total: int | None = None
    eta_seconds: float | None = None
    finished: bool = False
    summary: RunSummary | None = None


Progress = Callable[[RunEvent], None]


class _StageStop(threading.Event):
    """The flag a stage hands the workspace: set by the stage, or by the caller's ``cancel``.

    The workspace clears the flag it is given when a stage starts; clearing this one never
    clears a stop the caller asked for.
    """

    def __init__(self, outer: threading.Event | None) -> None:
        super().__init__()
        self._outer = outer

    def is_set(self) -> bool:
        return super().is_set() or (self._outer is not None and self._outer.is_set())


def track_video(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: Settings,
    prompt: str | None = None,
    *,
    negative: str | None = None,
    max_objects: int | None = None,
    project: str | os.PathLike[str] | None = None,
    formats: Sequence[str] | None = None,
    hub: ModelHub | None = None,
    limit: LengthLimit | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    workdir: str | os.PathLike[str] | None = None,
    open_workspace: OpenWorkspace | None = None,
) -> RunSummary:
    """Find ``prompt`` in ``video``, track the best match(es), write every output into ``out``.

    * ``settings``: the run's :class:`Settings` (``None`` fields are filled from the preset for
      the device; the summary holds the resolved ones).
    * ``prompt`` / ``negative``: what to follow and what not to pick; ``prompt`` is not used
      when ``project`` (a project / manifest file) is given: its objects and prompts are
      replayed and tracked instead.
    * ``max_objects``: follow up to this many distinct candidates of the best frame (default
      ``settings.max_objects``). With ``settings.discover`` (find new objects while tracking,
      a check every ``settings.discover_every`` frames) it also caps the total number of
      objects; without it (None) discovery adds as many as it confirms.
    * ``formats``: names of :data:`tracker.export.FORMATS` to write (default: all, flags
      included); the zip holds what was written.
    * ``hub``: the :class:`~tracker.models.ModelHub` to take models from (default: a new one;
      pass one to reuse loaded models across runs). ``open_workspace`` replaces
      :meth:`Workspace.open` with the hub entirely (the web app passes its own).
    * ``limit``: refuse longer videos (:class:`LengthLimit`).
    * ``progress``: called with each :class:`RunEvent`, on this thread.
    * ``cancel``: checked between frames; see the module docstring for what a stop keeps.
    * ``workdir``: the workspace's private folder (default ``out/.work``).

    ``out`` is created if needed; files in it with the names of the outputs are replaced.
    Returns the :class:`RunSummary` (also carried by each stage's last event).
    """
    out = Path(out)
    started = time.perf_counter()
    summary = RunSummary(Path(video), settings, prompt=prompt, negative=negative)
    summary.project = None if project is None else Path(project)
    report = _Reporter(progress, summary)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"Cannot use {out} as the output folder ({error.strerror or error}); choose another one."
        ) from None
    workdir = Path(workdir) if workdir is not None else out / ".work"
    ws = _open_stage(summary, workdir, hub, open_workspace, limit, report)
    with contextlib.closing(ws):
        if cancel is not None and cancel.is_set():
            raise Cancelled("Stopped before anything was tracked; nothing was written.")
        if project is not None:
            ws.load_project(Path(project))
            summary.objects = _objects_from_project(ws)
        else:
            _find(ws, summary, max_objects, cancel, report)
        if cancel is not None and cancel.is_set():
            raise Cancelled("Stopped before tracking started; nothing was written.")
        _track(ws, summary, cancel, report, _discovery_config(ws, max_objects))
        _export(ws, out, formats, summary, report)
    summary.timings["total"] = time.perf_counter() - started
    return summary


# ---------------------------------------------------------------------- the stages
class _Reporter:
    """Sends events to ``progress`` and times the stages into the summary."""

    def __init__(self, progress: Progress | None, summary: RunSummary) -> None:
        self.progress = progress
        self.summary = summary
        self._stage_started: dict[str, float] = {}

    def begin(self, stage: Stage) -> None:
        """The stage starts now (its timing counts from here, events or not)."""
        self._stage_started[stage] = time.perf_counter()

    def __call__(self, stage: Stage, fraction: float, message: str, **fields: Any) -> None:
        self._stage_started.setdefault(stage, time.perf_counter())
        if self.progress is not None:
            self.progress(RunEvent(stage, min(max(fraction, 0.0), 1.0), message, **fields))

    def finished(self, stage: Stage, message: str) -> None:
        self._stage_started.setdefault(stage, time.perf_counter())
        self.summary.timings[stage] = time.perf_counter() - self._stage_started[stage]
        if self.progress is not None:
            self.progress(RunEvent(stage, 1.0, message, finished=True, summary=self.summary))


def _open_stage(
    summary: RunSummary,
    workdir: Path,
    hub: ModelHub | None,
    open_workspace: OpenWorkspace | None,
    limit: LengthLimit | None,
    report: _Reporter,
) -> Workspace:
    """The stage "open": the workspace opened (settings resolved) and its length checked."""
    report.begin("open")
    report("open", 0.0, f"opening {summary.video.name}")
    if open_workspace is None:
        from .models import ModelHub
        from .workspace import Workspace

        models = hub if hub is not None else ModelHub()

        def open_workspace(video: Path, settings: Settings, folder: Path) -> Workspace:
            return Workspace.open(video, models, settings, folder)

    ws = open_workspace(summary.video, summary.settings, workdir)
    try:
        if limit is not None:
            limit.check(ws.info)
    except BaseException:
        ws.close()
        raise
    summary.settings = ws.settings
    summary.device = str(getattr(ws, "device", ""))
    summary.info = VideoFacts.from_info(ws.info)
    report.finished("open", describe_video(summary))
    return ws


def describe_video(summary: RunSummary) -> str:
    """One line about the opened video and the models, e.g. for the command line's stderr."""
    info, s = summary.info, summary.settings
    assert info is not None
    downscaled = (
        f" (downscaled from {info.source_width}×{info.source_height})"
        if (info.width, info.height) != (info.source_width, info.source_height)
        else ""
    )
    line = (
        f"{summary.video.name}: {info.frames} frames, {info.fps:.2f} fps, {info.width}×{info.height}"
        f"{downscaled}; SAM 2.1 {s.sam2_model} at {s.image_size}, preset {s.preset}, device {summary.device}"
    )
    return line + ("; RANDOM WEIGHTS (results are meaningless)" if s.random_weights else "")


def _find(ws: Workspace, summary: RunSummary, max_objects: int | None, cancel, report: _Reporter) -> None:
    report.begin("find")
    for event in ws.find_candidates(summary.prompt or "", summary.negative, cancel=_StageStop(cancel)):
        report("find", event.progress, event.message, frame=event.new_frame)
    if not ws.candidates:
        raise InputError(f"Nothing in the video matched {summary.prompt!r}; try a more specific prompt.")
    summary.num_candidates = len(ws.candidates)
    summary.candidates = [
        CandidateRow.from_candidate(rank, c) for rank, c in enumerate(ws.candidates[:SUMMARY_CANDIDATES], 1)
    ]
    count = max_objects if max_objects is not None else ws.settings.max_objects
    indices = ws.best_candidates(count)
    chosen = ws.accept_best(count)
    firsts = _first_frames(ws)
    summary.objects = [
        ChosenObject(
            obj.object_id,
            obj.name,
            "candidate",
            firsts.get(obj.object_id),
            rank=index + 1,
            score=float(ws.candidates[index].score),
        )
        for obj, index in zip(chosen, indices, strict=True)
    ]
    names = ", ".join(f"#{o.object_id} {o.name}" for o in chosen)
    report.finished("find", f"tracking {len(chosen)} object(s): {names}")


def _first_frames(ws: Workspace) -> dict[int, int]:
    firsts: dict[int, int] = {}
    for prompt in ws.prompts():  # in frame order
        firsts.setdefault(prompt.object_id, prompt.frame_idx)
    return firsts


def _objects_from_project(ws: Workspace) -> list[ChosenObject]:
    firsts = _first_frames(ws)
    return [
        ChosenObject(o.object_id, o.name, "project", firsts.get(o.object_id)) for o in ws.objects.values()
    ]


def _discovery_config(ws: Workspace, max_objects: int | None):
    """Discovery's config when ``settings.discover`` is on and there is a prompt to look for (a
    project made without Find has none: it is then tracked as it is, and the log says so)."""
    settings = ws.settings
    if not settings.discover:
        return None
    if not ws.prompt_text:
        logger.info("discovery off: the project has no prompt to look for (run Find to set one)")
        return None
    from .discovery import DiscoveryConfig

    return DiscoveryConfig(every=settings.discover_every, max_objects=max_objects)


def _track(ws: Workspace, summary: RunSummary, cancel, report: _Reporter, discover=None) -> None:
    stop = _StageStop(cancel)
    report.begin("track")
    found: list[FoundRecord] = ws.found
    seen = len(found)
    run = ws.track(cancel=stop) if discover is None else ws.track(cancel=stop, discover=discover)
    try:
        for event in run:
            for record in found[seen:]:
                report(
                    "track",
                    event.done / max(event.total, 1),
                    record.describe(ws.info.fps),
                    frame=record.frame,
                )
            seen = len(found)
            if event.replay:
                continue  # drawn again from results already counted
            summary.frames_tracked += 1
            eta = f", {event.eta_seconds:.0f} s left" if event.eta_seconds is not None else ""
            message = f"frame {event.result.frame_idx} ({event.direction}) {event.done}/{event.total}{eta}"
            report(
                "track", event.done / max(event.total, 1), message, frame=event.result.frame_idx,
                done=event.done, total=event.total, eta_seconds=event.eta_seconds,
            )  # fmt: skip
    except KeyboardInterrupt:
        # Ctrl+C on the command line: stop here and still write what was tracked
        stop.set()
    summary.cancelled = stop.is_set()
    if discover is not None:
        _discovery_summary(ws, summary, discover)
    if summary.cancelled:
        report.finished("track", "stopped: writing what was tracked so far")
    else:
        extra = ""
        if summary.discovery is not None:
            stats = summary.discovery
            extra = f"; discovery found {stats['discovered']} new, {stats['reacquired']} again"
        report.finished("track", f"tracked {summary.frames_tracked} frames{extra}")


def _discovery_summary(ws: Workspace, summary: RunSummary, config) -> None:
    """The summary's ``found``, ``discovery`` and the discovered objects."""
    summary.found = ws.found_records()
    known = {obj.object_id for obj in summary.objects}
    for record in summary.found:
        if record.kind == "discovered" and record.object_id not in known:
            name = ws.objects[record.object_id].name
            summary.objects.append(
                ChosenObject(record.object_id, name, "discovered", record.first_frame, score=record.score)
            )
    discovery = ws.last_discovery
    reports = discovery.reports if discovery is not None else []
    seconds = sum(r.seconds for r in reports)
    detector = getattr(discovery, "detector", None)
    summary.discovery = {
        "every": config.every,
        "max_objects": config.max_objects,
        "checks": len(reports),
        "seconds": round(seconds, 3),
        "seconds_per_check": round(seconds / len(reports), 3) if reports else None,
        "reused_features": getattr(detector, "reused", None),
        # work a check left out inside tracked objects (tracker.discovery.detector.ClipDetector)
        "decoded_points": getattr(detector, "points", None),
        "skipped_points": getattr(detector, "skipped_points", None),
        "cropped": getattr(detector, "crops", None),
        "skipped_crops": getattr(detector, "skipped_crops", None),
        "capped": any(r.capped for r in reports),
        "discovered": sum(r.kind == "discovered" for r in summary.found),
        "reacquired": sum(r.kind == "reacquired" for r in summary.found),
    }


def _export(ws: Workspace, out: Path, formats, summary: RunSummary, report: _Reporter) -> None:
    wanted = None if formats is None else list(formats)
    report.begin("export")
    report("export", 0.0, "checking the tracks for doubtful frames")
    summary.flags = list(ws.flags())
    report("export", 0.5, f"writing the files into {out}")
    summary.files = dict(ws.export(out, formats=wanted, flags=summary.flags))
    report.finished("export", f"wrote {len(summary.files)} outputs into {out}")


__all__ = [
    "STAGES",
    "CandidateRow",
    "ChosenObject",
    "LengthLimit",
    "OpenWorkspace",
    "RunEvent",
    "RunSummary",
    "VideoFacts",
    "describe_video",
    "track_video",
]
