"""The model work of the tracker as plain functions: plain inputs in, plain results out.

Each function here opens the video itself, takes the models from one :class:`ModelHub` of this
process (:func:`use_hub`) and keeps nothing between calls, so it can run in another process
(on Hugging Face ZeroGPU, a forked process that holds the GPU and whose memory is discarded
after each call). Inputs and outputs are picklable values: the video's path, a resolved
:class:`~tracker.settings.Settings`, :class:`~tracker.types.FramePrompt` lists, :class:`Leg`
lists, and back :class:`FrameMasks` (COCO RLE masks and scores per frame), :class:`PlainCandidate`
and :class:`FindUpdate`. Long work is a generator (one item per frame), so results stream.

The page's session (the open video, objects, prompts, edit history, results) stays with the
caller: :class:`tracker.remote.RemoteWorkspace` applies what these functions return.
:func:`track_seconds`, :func:`frames_per_call` and friends size each call's GPU time from the
work it will do.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Generator, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .legs import Leg
from .masks import decode_rle, encode_mask
from .settings import Settings
from .types import Box, Candidate, FramePrompt, FrameResult

logger = logging.getLogger(__name__)

# GPU-time sizing. LOAD_SECONDS covers what a call does before its first frame (models onto the
# GPU slice, opening the video, SAM 2 encoding the prompted frames); SAFETY multiplies the
# per-frame estimate of tracker.devices (measured on dedicated GPUs) for a shared slice.
LOAD_SECONDS = 20.0
SAFETY = 2.0
FIND_FRAME_SECONDS = 0.05  # CLIP ranking, per ranked frame
FIND_PROPOSAL_SECONDS = 3.0  # masks + crop scores, per searched frame
PROMPT_FRAME_SECONDS = 1.0  # one prompted frame (encode + decode)
CLIP_FRAME_SECONDS = 0.05  # one sampled frame of the review's CLIP series

_hub: Any = None  # this process's tracker.models.ModelHub (set by use_hub, else built on first use)
_hub_pid = 0  # the process that set it (a forked child has another pid)


# ---------------------------------------------------------------------- plain values
@dataclass(frozen=True)
class FrameMasks:
    """One frame's masks as COCO RLE (compact and picklable) with each object's score."""

    frame_idx: int
    object_ids: tuple[int, ...]
    rles: tuple[dict, ...]
    scores: tuple[float, ...]

    @classmethod
    def from_result(cls, result: FrameResult) -> FrameMasks:
        return cls(
            int(result.frame_idx),
            tuple(int(i) for i in result.object_ids),
            tuple(encode_mask(np.asarray(m, bool)) for m in result.masks),
            tuple(float(s) for s in result.scores),
        )

    def to_result(self, height: int, width: int) -> FrameResult:
        if not self.object_ids:
            return FrameResult.empty(self.frame_idx, height, width)
        masks = np.stack([decode_rle(rle) for rle in self.rles])
        return FrameResult(self.frame_idx, self.object_ids, masks, np.asarray(self.scores, np.float32))


@dataclass(frozen=True)
class PlainCandidate:
    """A :class:`~tracker.types.Candidate` with its mask as COCO RLE (and its CLIP crop
    embedding, float32, so the caller can rank by exemplars without a GPU call)."""

    frame_idx: int
    time: float
    rle: dict
    box: Box
    score: float
    frame_score: float
    negative_score: float | None
    area: int
    text_score: float | None = None
    embedding: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def from_candidate(cls, c: Candidate) -> PlainCandidate:
        return cls(c.frame_idx, c.time, encode_mask(c.mask), tuple(float(v) for v in c.box),  # type: ignore[arg-type]
                   float(c.score), float(c.frame_score), c.negative_score, int(c.area),
                   c.text_score, c.embedding)  # fmt: skip

    def to_candidate(self) -> Candidate:
        return Candidate(self.frame_idx, self.time, decode_rle(self.rle), self.box, self.score,
                         self.frame_score, self.negative_score, self.area, self.text_score,
                         self.embedding)  # fmt: skip


@dataclass(frozen=True)
class FindUpdate:
    """Progress of :func:`find_candidates` (the fields of :class:`tracker.workspace.FindEvent`)."""

    stage: str
    progress: float
    message: str
    candidates: tuple[PlainCandidate, ...] | None  # all so far, best first; None = unchanged
    new_frame: int | None = None


# ---------------------------------------------------------------------- models and video
def use_hub(hub: Any) -> None:
    """Make ``hub`` the :class:`~tracker.models.ModelHub` these functions take models from.

    Set it (and load the models, :func:`preload`) in the main process before any call: a
    forked process then starts with the models already in memory.
    """
    global _hub, _hub_pid
    _hub, _hub_pid = hub, os.getpid()


def hub_for(settings: Settings) -> Any:
    """This process's hub; in a process forked from the one that set it, CPU work goes single-threaded.

    (A process forked after its parent ran OpenMP-parallel torch code hangs in its own first
    parallel region; one intra-op thread avoids the thread pool. The GPU does the real work.)
    """
    global _hub
    if _hub_pid and os.getpid() != _hub_pid:
        import torch

        torch.set_num_threads(1)
    if _hub is None:
        from .models import ModelHub

        _hub = ModelHub(
            checkpoints_dir=settings.checkpoints_dir, offline=settings.offline or None, device=settings.device
        )
    return _hub


def sam2_for(settings: Settings) -> Any:
    s = settings
    return hub_for(s).sam2(s.sam2_model, image_size=s.image_size, device=s.device, random_weights=s.random_weights,
                           checkpoint=s.sam2_checkpoint, checkpoints_dir=s.checkpoints_dir, offline=s.offline)  # fmt: skip


def clip_for(settings: Settings) -> Any:
    s = settings
    return hub_for(s).clip(s.clip_model, device=s.device, random_weights=s.random_weights,
                           checkpoint=s.clip_checkpoint, checkpoints_dir=s.checkpoints_dir, offline=s.offline)  # fmt: skip


def preload(settings: Settings) -> None:
    """Load SAM 2 and CLIP for ``settings`` (resolved) into this process's hub."""
    sam2_for(settings)
    clip_for(settings)


def build_finder(hub: Any, settings: Settings, device: Any, autocast: Any) -> Any:
    """The :class:`~tracker.candidates.CandidateFinder` ``settings`` (resolved) ask for, models from ``hub``."""
    from .candidates import CandidateFinder

    s = settings
    predictor = hub.sam2(s.sam2_model, image_size=s.image_size, device=device, random_weights=s.random_weights,
                         checkpoint=s.sam2_checkpoint, checkpoints_dir=s.checkpoints_dir, offline=s.offline)  # fmt: skip
    clip = hub.clip(s.clip_model, device=device, random_weights=s.random_weights,
                    checkpoint=s.clip_checkpoint, checkpoints_dir=s.checkpoints_dir, offline=s.offline)  # fmt: skip

    def sam1() -> Any:
        return hub.sam1(s.sam1_model, device=device, random_weights=s.random_weights,
                        checkpoint=s.sam1_checkpoint, checkpoints_dir=s.checkpoints_dir, offline=s.offline)  # fmt: skip

    return CandidateFinder(
        clip,
        predictor,
        proposer=s.mask_generator,
        points_per_side=s.points_per_side,
        stride=s.stride,
        top_frames=s.top_frames,
        threshold=s.threshold,
        overlap_iou=s.overlap_iou,
        random_weights=s.random_weights,
        take_best=s.take_best,
        model_lock=hub.lock_for(predictor),
        autocast=autocast,
        sam1=sam1,
    )


def _device_and_autocast(settings: Settings) -> tuple[Any, Any]:
    from .devices import autocast, pick_device

    device = pick_device(settings.device)
    return device, (lambda: autocast(device, enabled=settings.bf16))


def open_video(video: str | Path, settings: Settings) -> Any:
    """A :class:`~tracker.video.VideoReader` giving the same frames as the caller's workspace."""
    from .video import VideoReader, probe

    s = settings
    return VideoReader(probe(Path(video), max_size=s.max_size, start=s.start_time, end=s.end_time))


def _session(reader: Any, settings: Settings, prompts: Iterable[FramePrompt]) -> Any:
    from .session import TrackingSession

    _, autocast = _device_and_autocast(settings)
    session = TrackingSession(sam2_for(settings), reader, autocast=autocast)
    for prompt in prompts:
        session.add_prompt(prompt)
    return session


# ---------------------------------------------------------------------- the work
def find_candidates(
    video: str, settings: Settings, prompt: str, negative: str | None
) -> Generator[FindUpdate]:
    """Rank frames against ``prompt`` and propose masks; one update per step, candidates as they come."""
    device, autocast = _device_and_autocast(settings)
    finder = build_finder(hub_for(settings), settings, device, autocast)
    reader = open_video(video, settings)
    sent: tuple = ()
    try:
        for event in finder.find(reader, prompt, negative):
            ids = tuple((c.frame_idx, c.score, c.area, tuple(c.box)) for c in event.candidates)
            fresh = ids != sent  # candidates travel only when they changed
            sent = ids
            plain = tuple(PlainCandidate.from_candidate(c) for c in event.candidates) if fresh else None
            yield FindUpdate(event.stage, event.progress, event.message, plain, event.new_frame)
    finally:
        reader.close()


def prompt_frames(
    video: str, settings: Settings, prompts: list[FramePrompt], frames: list[int]
) -> list[FrameMasks]:
    """The masks SAM 2 gives on each of ``frames`` for ``prompts`` (objects prompted there only)."""
    reader = open_video(video, settings)
    wanted = set(frames)
    try:
        with closing(_session(reader, settings, [p for p in prompts if p.frame_idx in wanted])) as session:
            out = []
            for frame_idx in frames:
                here = [p.object_id for p in prompts if p.frame_idx == frame_idx]
                result = session.mask_at(frame_idx)
                if result is None or not here:
                    out.append(FrameMasks(frame_idx, (), (), ()))
                else:
                    out.append(FrameMasks.from_result(result.select(here)))
            return out
    finally:
        reader.close()


def track_frames(
    video: str, settings: Settings, prompts: list[FramePrompt], legs: list[Leg]
) -> Generator[FrameMasks]:
    """Track every prompted object through ``legs`` in order; one :class:`FrameMasks` per frame."""
    reader = open_video(video, settings)
    try:
        with closing(_session(reader, settings, prompts)) as session:
            for leg in legs:
                run = session.propagate(start_frame=leg.first, end_frame=leg.last, direction=leg.direction)
                with closing(run):
                    for result in run:
                        yield FrameMasks.from_result(result)
    finally:
        reader.close()


def clip_series(
    video: str, settings: Settings, prompt: str, frames: list[FrameMasks]
) -> dict[int, dict[int, float]]:
    """``{object_id: {frame: 100·cos(crop, prompt)}}`` of the given masks (see :func:`crop_series`)."""
    reader = open_video(video, settings)
    try:
        height, width = reader.info.height, reader.info.width
        results = (f.to_result(height, width) for f in frames)
        return crop_series(reader.get, clip_for(settings), prompt, results)
    finally:
        reader.close()


def crop_series(
    frame_of: Any, clip: Any, prompt: str, results: Iterable[FrameResult]
) -> dict[int, dict[int, float]]:
    """Each non-empty mask's crop scored against ``prompt``: ``{object_id: {frame: score}}``."""
    from .candidates import crop_scores, encode_prompt

    text = encode_prompt(clip, prompt)
    series: dict[int, dict[int, float]] = {}
    for result in results:
        masks, ids = [], []
        for object_id, mask in zip(result.object_ids, result.masks, strict=True):
            if mask.any():
                masks.append(mask)
                ids.append(object_id)
        if not masks:
            continue
        # whole crops: CLIP resizes them itself, as this series has always been scored
        scores = crop_scores(frame_of(result.frame_idx), masks, clip, text, thumb_size=None).tolist()
        for object_id, score in zip(ids, scores, strict=True):
            series.setdefault(int(object_id), {})[result.frame_idx] = float(score)
    return series


# ---------------------------------------------------------------------- GPU time
def seconds_per_frame(settings: Settings, objects: int) -> float:
    """Tracking seconds per frame on a GPU slice (tracker.devices' estimate × :data:`SAFETY`)."""
    from .devices import seconds_per_frame as estimate

    return SAFETY * estimate(
        settings.sam2_model or "tiny", settings.image_size or 1024, "cuda", max(objects, 1)
    )


def track_seconds(settings: Settings, frames: int, objects: int) -> float:
    return LOAD_SECONDS + frames * seconds_per_frame(settings, objects)


def frames_per_call(settings: Settings, objects: int, budget: float) -> int:
    """How many frames one call of at most ``budget`` seconds can track (at least 1)."""
    return max(1, int((budget - LOAD_SECONDS) / seconds_per_frame(settings, objects)))


def find_seconds(settings: Settings, num_frames: int) -> float:
    stride = max(1, settings.stride or 15)
    return (
        LOAD_SECONDS
        + FIND_FRAME_SECONDS * math.ceil(num_frames / stride)
        + FIND_PROPOSAL_SECONDS * (settings.top_frames or 3)
    )


def prompt_seconds(frames: int) -> float:
    return LOAD_SECONDS + PROMPT_FRAME_SECONDS * max(frames, 1)


def clip_seconds(frames: int) -> float:
    return LOAD_SECONDS + CLIP_FRAME_SECONDS * frames


__all__ = [
    "FindUpdate",
    "FrameMasks",
    "PlainCandidate",
    "build_finder",
    "clip_series",
    "crop_series",
    "find_candidates",
    "frames_per_call",
    "open_video",
    "preload",
    "prompt_frames",
    "track_frames",
    "track_seconds",
    "use_hub",
]
