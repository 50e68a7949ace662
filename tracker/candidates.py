"""Text prompt → ranked candidate masks: the "Find" step.

The pipeline, for one prompt on one video:

1. **Prompt.** :func:`check_prompt` rejects an empty prompt and shortens a very long one; the
   encoder turns it into one unit vector (``encode_prompt``: mean of the normalised template
   embeddings, renormalised). An optional negative prompt ("not the dog") is encoded the same way.
2. **Frames.** :func:`rank_frames` streams every ``stride``-th frame (about two a second by
   default), scores it against the prompt with CLIP and keeps the ``top_k`` best that are at least
   ``min_gap`` frames apart, so the three frames are not three copies of one moment. Only
   CLIP-sized thumbnails of the current batch are in memory, never the frames.
3. **Masks.** A :class:`MaskProposer` proposes masks on each chosen frame. The default,
   :class:`PointPromptProposer`, asks CLIP where the prompt is (:func:`clip_heatmap`: one batch of
   half-overlapping windows, half the short side wide — 21 on a 16:9 frame; more scales are an
   option, each costs another batch of CLIP), takes the heat map's peaks plus a sparse grid as
   point prompts, runs SAM 2's image encoder **once** and decodes every point in one batch (three
   masks a point), keeps masks by predicted quality and drops duplicates. The full automatic
   generators (SAM 2's or segment-anything's) are available as :class:`AutoMaskProposer`;
   :data:`PROPOSERS` names them (``"points"``, ``"sam2-auto"``, ``"sam1-auto"``).
4. **Scores.** :func:`score_masks` cuts each mask out (:func:`crop_for_clip`: the mask's box plus
   a margin, the background dimmed towards grey, padded square) and scores all crops of a frame
   in one CLIP batch: ``score = 100·crop·text``. With a negative prompt the score becomes
   ``s_pos − w·softplus(s_neg − s_pos)`` (:func:`combine_scores`), i.e. ``s_pos`` plus ``w`` times
   the log-probability that CLIP's own zero-shot classifier, choosing between the prompt and the
   negative prompt, picks the prompt. Masks under 0.1 % or over 95 % of the frame are dropped.
5. **Choice.** Per frame, :func:`suppress_overlaps` keeps one mask per instance (so "all the red
   cars" gives several objects) and the best ``per_frame`` survive; candidates under
   ``threshold`` are dropped. If nothing passes, :class:`~tracker.errors.NoCandidates` is raised,
   unless ``take_best`` (return the best anyway, flagged ``below_threshold``) or
   ``random_weights`` (scores are noise, thresholds mean nothing: keep the best, with a warning).

:meth:`CandidateFinder.find` runs all of it as a generator of :class:`FinderEvent` (the shape of
:class:`tracker.workspace.FindEvent`), yielding each frame's candidates as soon as they exist.

Protocols, not model classes, are what this module depends on: :class:`TextImageEncoder`
(``tracker.models.ClipModel`` is one), :class:`MaskProposer` and :class:`FrameSource`
(``tracker.video.VideoReader`` is one). Heavy imports (torch, sam2, PIL) happen inside functions.
The finder holds the caller's model lock around every SAM call (SAM keeps per-image state);
CLIP calls are stateless. One finder runs one search at a time.
"""

from __future__ import annotations

import logging
import math
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from dataclasses import replace as dc_replace
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from . import timing
from .errors import Cancelled, InputError, NoCandidates
from .types import Box, Candidate, VideoInfo, mask_box

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Longer prompts are cut at a word boundary. CLIP reads at most 77 tokens (its context length,
#: start and end tokens and the template's words included), about 300 characters of English.
MAX_PROMPT_CHARS = 300
EMPTY_PROMPT_MESSAGE = "Type what to follow, e.g. 'red shoes'."

#: Grey that dimmed backgrounds and square padding blend towards (CLIP's mean pixel is ~0.45).
GREY = 128


# --------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------


@runtime_checkable
class TextImageEncoder(Protocol):
    """What the finder needs from CLIP.

    ``encode_prompt(prompt)`` returns a ``(D,)`` unit vector (the mean of the prompt's template
    embeddings, renormalised). ``encode_images(images)`` takes ``H×W×3 uint8 RGB`` images of any
    size (the encoder does its own resize / crop / normalise) and returns ``N×D`` unit rows.
    numpy arrays or CPU torch tensors are both accepted back.
    """

    def encode_prompt(self, prompt: str) -> Any: ...

    def encode_images(self, images: Sequence[np.ndarray]) -> Any: ...


class Proposal(NamedTuple):
    """One proposed mask: ``H×W bool`` at the frame's size, and the proposer's own quality in [0, 1]
    (SAM's predicted IoU), used to order and de-duplicate proposals, not to rank candidates."""

    mask: np.ndarray
    quality: float


@runtime_checkable
class MaskProposer(Protocol):
    """Proposes masks on one frame.

    ``__call__(frame, points)``: ``frame`` is ``H×W×3 uint8 RGB``; ``points`` is an ``N×2`` float
    array of ``(x, y)`` frame pixels where the prompt probably is (CLIP's heat-map peaks), or None.
    Returns proposals best first. ``uses_points`` says whether the proposer looks at ``points``;
    when it is False the finder does not spend time computing them.
    """

    uses_points: bool

    def __call__(self, frame: np.ndarray, points: np.ndarray | None = None) -> list[Proposal]: ...


class FrameSource(Protocol):
    """The part of :class:`tracker.video.VideoReader` the finder reads.

    ``iter_frames(start, stop, step)`` yields ``(frame_idx, H×W×3 uint8)`` for ``range(start,
    stop, step)`` in order, decoding as it goes; ``get(i)`` returns one frame.
    """

    info: VideoInfo

    def iter_frames(self, start: int, stop: int, step: int) -> Iterable[tuple[int, np.ndarray]]: ...

    def get(self, frame_idx: int) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankedFrame:
    """A frame picked for masks: its index, time (s) and whole-frame score ``100·img·text``."""

    frame_idx: int
    score: float
    time: float = 0.0


@dataclass
class FinderEvent:
    """Progress of :meth:`CandidateFinder.find`.

    Same fields as :class:`tracker.workspace.FindEvent` (which this converts to field by field),
    plus ``ranked`` (the frames chosen for masks, once known) and ``below_threshold`` (True when
    the candidates are the best of a search in which nothing passed the threshold).
    """

    stage: str  # "rank" | "masks" | "score" | "done"
    progress: float  # 0..1 over the whole find
    message: str
    candidates: list[Candidate] = field(default_factory=list)  # all so far, best first
    new_frame: int | None = None  # frame whose candidates just arrived
    ranked: tuple[RankedFrame, ...] = ()
    below_threshold: bool = False


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
    def from_settings(cls, settings: Any, **overrides: Any) -> FinderOptions:
        """From a :class:`tracker.settings.Settings` (read by attribute name, not imported);
        settings left at None keep this class's defaults."""
        names = ("stride", "top_frames", "threshold", "take_best", "random_weights", "overlap_iou")
        values = {name: getattr(settings, name, None) for name in names}
        values["per_frame"] = max(cls.per_frame, getattr(settings, "max_objects", None) or 1)
        values.update(overrides)
        return cls(**{name: value for name, value in values.items() if value is not None})


# --------------------------------------------------------------------------------------------
# Prompt
# --------------------------------------------------------------------------------------------


def check_prompt(prompt: str | None, *, what: str = "prompt") -> str:
    """Collapse whitespace; refuse an empty prompt; shorten one over :data:`MAX_PROMPT_CHARS`.

    Long prompts are cut at the last word boundary before the limit (a warning is logged): CLIP
    could not read the rest anyway, its tokenizer stops at 77 tokens. Any Unicode text is
    accepted (CLIP's byte-level BPE encodes every character), but CLIP was trained on mostly
    English captions, so other languages match less reliably; that is logged at info level.
    Raises :class:`InputError` for ``None``, empty or whitespace-only prompts.
    """
    text = " ".join((prompt or "").split())
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    if not text:
        raise InputError(EMPTY_PROMPT_MESSAGE)
    if len(text) > MAX_PROMPT_CHARS:
        cut = text[:MAX_PROMPT_CHARS]
        if " " in cut:
            cut = cut[: cut.rindex(" ")]
        logger.warning(
            "The %s is %d characters; CLIP reads about %d (77 tokens), so only %r is used.",
            what,
            len(text),
            MAX_PROMPT_CHARS,
            cut[:60] + "…",
        )
        text = cut
    if any(ord(ch) > 127 and ch.isalpha() for ch in text):
        logger.info("CLIP was trained on mostly English captions; %r may match less reliably.", text)
    return text


def prompt_notes(prompt: str | None) -> list[str]:
    """One-sentence notes a person should see about ``prompt`` (it still works): too long, not English.

    The same conditions :func:`check_prompt` logs; a front end shows these next to the results.
    """
    text = " ".join((prompt or "").split())
    notes = []
    if len(text) > MAX_PROMPT_CHARS:
        notes.append(
            f"The prompt is {len(text)} characters long; CLIP reads about {MAX_PROMPT_CHARS} "
            "(77 tokens), so only its beginning is used. A few specific words work best."
        )
    if any(ord(ch) > 127 and ch.isalpha() for ch in text):
        notes.append(
            "CLIP was trained on mostly English captions, so this prompt may match less reliably; "
            "if the candidates look wrong, try it in English."
        )
    return notes


def encode_prompt(encoder: TextImageEncoder, prompt: str) -> np.ndarray:
    """The prompt's ``(D,)`` float32 unit vector (renormalised, whatever the encoder returned)."""
    return _unit(to_numpy(encoder.encode_prompt(prompt)).reshape(-1))


# --------------------------------------------------------------------------------------------
# Frame ranking
# --------------------------------------------------------------------------------------------


def default_stride(fps: float) -> int:
    """About two ranked frames a second."""
    return max(1, round(fps / 2)) if fps > 0 else 1


def default_min_gap(fps: float, stride: int) -> int:
    """Chosen frames are at least a second and two strides apart."""
    return max(2 * stride, round(fps) if fps > 0 else 0, 1)


def frame_views(frame: np.ndarray, size: int = 224) -> list[np.ndarray]:
    """Square tiles that together cover the whole frame, each resized to ``size×size``.

    CLIP centre-crops to a square, so scoring a 16:9 frame as one image would ignore its sides;
    ``ceil(long / short)`` evenly spaced squares of the short side see everything at the
    resolution CLIP would use anyway.
    """
    height, width = frame.shape[:2]
    short, long_ = min(height, width), max(height, width)
    count = max(1, math.ceil(long_ / short - 1e-6))
    starts = np.linspace(0, long_ - short, count).round().astype(int) if count > 1 else [0]
    views = []
    for start in starts:
        tile = frame[:, start : start + short] if width >= height else frame[start : start + short, :]
        views.append(resize(tile, size, size))
    return views


def pick_frames(scores: Mapping[int, float], top_k: int, min_gap: int) -> list[tuple[int, float]]:
    """The ``top_k`` best-scoring frames, no two closer than ``min_gap`` frames, best first.

    Greedy: take the best remaining frame unless it is within ``min_gap`` of one already taken.
    Fewer than ``top_k`` come back when the video is too short to space them (ties: earlier first).
    """
    chosen: list[tuple[int, float]] = []
    for frame_idx, score in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
        if len(chosen) >= top_k:
            break
        if all(abs(frame_idx - taken) >= min_gap for taken, _ in chosen):
            chosen.append((frame_idx, float(score)))
    return chosen


def iter_frame_scores(
    reader: FrameSource,
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    stride: int,
    *,
    batch_size: int = 32,
    thumb_size: int = 224,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[int, int, dict[int, float]]]:
    """Score every ``stride``-th frame; yield ``(frames_done, frames_total, scores)`` per batch.

    A frame's score is the best ``100·img·text`` over its :func:`frame_views`. Frames are
    streamed from ``reader.iter_frames``; only the current batch's thumbnails are held.
    Raises :class:`Cancelled` when ``cancel`` is set (checked between frames).
    """
    num_frames = reader.info.num_frames
    total = len(range(0, num_frames, stride))
    scores: dict[int, float] = {}
    pending: list[tuple[int, np.ndarray]] = []  # (frame_idx, thumbnail)
    done = 0

    def flush() -> None:
        features = encode_images(encoder, [thumb for _, thumb in pending], batch_size)
        view_scores = 100.0 * features @ text_features
        for (frame_idx, _), score in zip(pending, view_scores, strict=True):
            scores[frame_idx] = max(scores.get(frame_idx, -math.inf), float(score))
        pending.clear()

    for frame_idx, frame in reader.iter_frames(0, num_frames, stride):
        _check(cancel)
        pending.extend((frame_idx, view) for view in frame_views(frame, thumb_size))
        done += 1
        if len(pending) >= batch_size:
            flush()
            yield done, total, dict(scores)
    if pending:
        _check(cancel)
        flush()
    yield done, total, dict(scores)


def rank_frames(
    reader: FrameSource,
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    stride: int,
    top_k: int,
    min_gap: int,
    *,
    batch_size: int = 32,
    thumb_size: int = 224,
    cancel: threading.Event | None = None,
) -> list[RankedFrame]:
    """The ``top_k`` frames (every ``stride``-th considered) that best match ``text_features``.

    Whole-frame score ``100·img·text`` (best over the frame's square views); chosen frames are
    at least ``min_gap`` frames apart; best first. Never holds more than one batch of thumbnails.
    """
    scores: dict[int, float] = {}
    for _, _, so_far in iter_frame_scores(
        reader, encoder, text_features, stride, batch_size=batch_size, thumb_size=thumb_size, cancel=cancel
    ):
        scores = so_far
    return [
        RankedFrame(frame_idx, score, reader.info.time_of(frame_idx))
        for frame_idx, score in pick_frames(scores, top_k, min_gap)
    ]


# --------------------------------------------------------------------------------------------
# CLIP heat map → point prompts
# --------------------------------------------------------------------------------------------


def window_grid(
    width: int, height: int, scales: Sequence[float] = (0.5,), overlap: float = 0.5
) -> list[tuple[int, int, int, int, int]]:
    """Overlapping square windows ``(scale_index, x0, y0, x1, y1)`` covering the frame at each scale.

    A window's side is ``scale · short side``; neighbours overlap by ``overlap`` of a side
    (positions evenly spread, first and last touching the frame's edges).
    """
    windows = []
    short = min(width, height)
    for scale_index, scale in enumerate(scales):
        side = max(1, min(short, round(scale * short)))
        step = max(1.0, side * (1.0 - overlap))

        def starts(length: int, side: int = side, step: float = step) -> np.ndarray:
            count = math.ceil(max(0, length - side) / step) + 1
            return np.linspace(0, length - side, count).round().astype(int)

        for y0 in starts(height):
            for x0 in starts(width):
                windows.append((scale_index, int(x0), int(y0), int(x0) + side, int(y0) + side))
    return windows


@dataclass
class Heatmap:
    """CLIP's "where is the prompt" map: ``values`` on a grid of ``cell×cell``-pixel cells
    covering a ``width×height`` frame."""

    values: np.ndarray  # rows × cols float32
    cell: float  # cell side in frame pixels
    width: int
    height: int

    def peaks(self, count: int, min_distance: float) -> np.ndarray:
        """Up to ``count`` maxima, best first, as an ``N×2`` float array of ``(x, y)`` frame pixels.

        Greedy: take the hottest cell, blank a disc of ``min_distance`` pixels around it, repeat.
        Window scores make flat plateaus; a peak is the centre of its plateau (the cells joined
        to the hottest one that are as hot), not the plateau's first cell.
        """
        heat = self.values.astype(np.float64).copy()
        rows, cols = np.mgrid[0 : heat.shape[0], 0 : heat.shape[1]]
        radius = min_distance / self.cell
        points = []
        for _ in range(count):
            if not np.isfinite(heat).any():
                break
            top = np.unravel_index(int(np.argmax(heat)), heat.shape)
            plateau = _plateau(heat, top)
            r, c = float(rows[plateau].mean()), float(cols[plateau].mean())
            x = min((c + 0.5) * self.cell, self.width - 0.5)
            y = min((r + 0.5) * self.cell, self.height - 0.5)
            points.append((x, y))
            heat[((rows - r) ** 2 + (cols - c) ** 2 <= radius * radius) | plateau] = -np.inf
        return np.asarray(points, dtype=np.float32).reshape(-1, 2)


def _plateau(heat: np.ndarray, start: tuple[int, ...]) -> np.ndarray:
    """Cells 4-connected to ``start`` whose value equals it (to float tolerance), as a bool map."""
    level = heat[start]
    same = np.isclose(heat, level, rtol=1e-5, atol=1e-6)
    plateau = np.zeros(heat.shape, bool)
    stack = [start]
    while stack:
        r, c = stack.pop()
        if plateau[r, c] or not same[r, c]:
            continue
        plateau[r, c] = True
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            if 0 <= r + dr < heat.shape[0] and 0 <= c + dc < heat.shape[1]:
                stack.append((r + dr, c + dc))
    return plateau


@timing.stage("heat map")
def clip_heatmap(
    frame: np.ndarray,
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    negative_features: np.ndarray | None = None,
    *,
    scales: Sequence[float] = (0.5,),
    overlap: float = 0.5,
    cells: int = 32,
    negative_weight: float = 1.0,
    batch_size: int = 32,
    thumb_size: int = 224,
) -> Heatmap:
    """Score :func:`window_grid` crops of ``frame`` with CLIP (one batch) and spread the scores.

    Per scale, the windows' scores (``100·crop·text``, through :func:`combine_scores`, so a
    negative prompt cools the map where it matches better) go through a softmax: CLIP's own
    probability, at its logit scale of 100, that each window is the one the prompt describes.
    A cell's value is the probability that the chosen window covers it (the sum over covering
    windows); the map is the mean over scales. Where tied windows overlap, the object is in
    the intersection, which this favours (a plain mean of covering windows' scores instead
    drifts to frame edges, where fewer windows overlap). ``cells`` cells span the long side.
    """
    height, width = frame.shape[:2]
    windows = window_grid(width, height, scales, overlap)
    crops = [resize(frame[y0:y1, x0:x1], thumb_size, thumb_size) for _, x0, y0, x1, y1 in windows]
    features = encode_images(encoder, crops, batch_size)
    scores, _ = combine_scores(features, text_features, negative_features, negative_weight)
    cell = max(width, height) / cells
    rows, cols = math.ceil(height / cell), math.ceil(width / cell)
    centres_y = np.minimum((np.arange(rows) + 0.5) * cell, height - 0.5)
    centres_x = np.minimum((np.arange(cols) + 0.5) * cell, width - 0.5)
    scale_of = np.array([window[0] for window in windows])
    total = np.zeros((rows, cols), np.float64)
    for scale_index in range(len(scales)):
        here = np.flatnonzero(scale_of == scale_index)
        logits = scores[here].astype(np.float64)
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        for i, weight in zip(here, weights, strict=True):
            _, x0, y0, x1, y1 = windows[i]
            ys = (centres_y >= y0) & (centres_y < y1)
            xs = (centres_x >= x0) & (centres_x < x1)
            total[np.ix_(ys, xs)] += weight
    return Heatmap((total / len(scales)).astype(np.float32), cell, width, height)


# --------------------------------------------------------------------------------------------
# Mask proposers
# --------------------------------------------------------------------------------------------


class PointPromptProposer:
    """SAM 2 masks from a few point prompts: CLIP's heat-map peaks plus a sparse grid.

    One ``set_image`` per frame (SAM 2 resizes to its processing size, e.g. 512), then every point
    decoded in one batch with ``multimask_output`` (three masks a point: part, object, group).
    Masks are judged at the decoder's low resolution (``image_size/4`` square): kept when the
    predicted IoU and the stability score pass, de-duplicated by mask IoU, and only the
    survivors are upsampled to the frame (bilinear on the logits, ``> 0``, the way SAM 2's own
    post-processing does it).

    ``predictor`` is a ``SAM2ImagePredictor`` whose ``_bb_feat_sizes`` match its model's
    image size (``tracker.models.sam2_image_predictor`` builds one sharing the video model).
    ``grid`` points a side of the sparse grid (``grid=4`` → 16 points) find what CLIP's peaks
    miss. When no mask passes the quality filters, the ``fallback_masks`` best (by predicted
    IoU) are kept anyway: CLIP, not SAM's self-assessment, decides what matches the prompt.
    ``random_weights`` turns the quality thresholds off (untrained scores are noise).
    """

    uses_points = True

    def __init__(
        self,
        predictor: Any,
        *,
        grid: int = 4,
        pred_iou_thresh: float = 0.7,
        stability_thresh: float = 0.85,
        dedupe_iou: float = 0.8,
        max_masks: int = 24,
        fallback_masks: int = 3,
        min_area_fraction: float = 0.001,
        max_area_fraction: float = 0.95,
        random_weights: bool = False,
    ) -> None:
        self.predictor = predictor
        self.grid = grid
        self.pred_iou_thresh = 0.0 if random_weights else pred_iou_thresh
        self.stability_thresh = 0.0 if random_weights else stability_thresh
        self.dedupe_iou = dedupe_iou
        self.max_masks = max_masks
        self.fallback_masks = fallback_masks
        self.min_area_fraction = min_area_fraction
        self.max_area_fraction = max_area_fraction
        self.last_timings: dict[str, float] = {}

    def grid_points(self, width: int, height: int) -> np.ndarray:
        """``grid×grid`` cell centres as ``(x, y)`` pixels."""
        if self.grid <= 0:
            return np.zeros((0, 2), np.float32)
        steps = (np.arange(self.grid) + 0.5) / self.grid
        xs, ys = np.meshgrid(steps * width, steps * height)
        return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)

    @timing.stage("proposals", count=len)
    def __call__(self, frame: np.ndarray, points: np.ndarray | None = None) -> list[Proposal]:
        import torch

        height, width = frame.shape[:2]
        prompts = self.grid_points(width, height)
        if points is not None and len(points):
            prompts = np.concatenate([np.asarray(points, np.float32).reshape(-1, 2), prompts])
        if not len(prompts):
            return []
        if not frame.flags.writeable:  # torch warns on read-only arrays (e.g. a reader's cached frame)
            frame = frame.copy()
        started = perf_counter()
        self.predictor.set_image(frame)
        encoded = perf_counter()
        logits, quality = _decode_points(self.predictor, prompts / np.array([width, height], np.float32))
        self.predictor.reset_predictor()
        decoded = perf_counter()

        low = logits > 0
        area = low.flatten(1).float().mean(1).numpy()
        sized = (area >= self.min_area_fraction) & (area <= self.max_area_fraction)
        keep = sized & (quality >= self.pred_iou_thresh)
        if self.stability_thresh > 0:
            keep &= _stability(logits) >= self.stability_thresh
        if not keep.any() and sized.any():
            # Better a few doubtful masks for CLIP to judge than an empty result.
            keep = sized & (quality >= np.sort(quality[sized])[::-1][: self.fallback_masks].min())
            logger.debug("no mask passed the quality filters; keeping the %d best anyway", int(keep.sum()))
        order = [int(i) for i in np.argsort(-quality, kind="stable") if keep[i]]
        order = _dedupe(low, order, self.dedupe_iou)[: self.max_masks]

        proposals = []
        for chunk in range(0, len(order), 8):
            index = torch.as_tensor(order[chunk : chunk + 8])
            up = torch.nn.functional.interpolate(
                logits[index][:, None], size=(height, width), mode="bilinear", align_corners=False
            )[:, 0]
            for i, mask in zip(index.tolist(), (up > 0).numpy(), strict=True):
                proposals.append(Proposal(mask, float(quality[i])))
        self.last_timings = {
            "set_image": encoded - started,
            "decode": decoded - encoded,
            "post": perf_counter() - decoded,
        }
        logger.debug(
            "points proposer: %d prompts → %d masks → %d kept (set_image %.2f s, decode %.2f s)",
            len(prompts),
            len(quality),
            len(proposals),
            encoded - started,
            decoded - encoded,
        )
        return proposals


def _decode_points(predictor: Any, points_normalised: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Decode one positive point per prompt on the predictor's current image.

    Returns low-resolution mask logits ``(3N)×h×w`` (``h = w = image_size/4``) and their
    predicted IoUs ``(3N,)``. This is ``SAM2ImagePredictor._predict`` without its final upsampling
    to the image size, which for ~60 masks on a 720p frame costs more than the decoder itself.
    """
    import torch

    model = predictor.model
    features = predictor._features
    coords = torch.as_tensor(points_normalised, dtype=torch.float32)[:, None, :] * model.image_size
    labels = torch.ones(coords.shape[:2], dtype=torch.int)
    with torch.inference_mode():
        sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        low_res, iou, _, _ = model.sam_mask_decoder(
            image_embeddings=features["image_embed"][-1].unsqueeze(0),
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=coords.shape[0] > 1,
            high_res_features=[level[-1].unsqueeze(0) for level in features["high_res_feats"]],
        )
    return low_res.flatten(0, 1).float().clamp(-32, 32), iou.flatten().float().numpy()


def _stability(logits: torch.Tensor, offset: float = 1.0) -> np.ndarray:
    """SAM's stability score: IoU of the mask thresholded at ``+offset`` and at ``−offset``."""
    inner = (logits > offset).flatten(1).sum(1).float()
    outer = (logits > -offset).flatten(1).sum(1).float()
    return (inner / outer.clamp(min=1)).numpy()


def _dedupe(masks: torch.Tensor, order: list[int], iou: float) -> list[int]:
    """Greedy NMS by mask IoU over ``masks`` (N×h×w bool) in ``order``; returns kept indices."""
    if not order:
        return []
    flat = masks[order].flatten(1).float()
    inter = flat @ flat.T
    areas = flat.sum(1)
    ious = (inter / (areas[:, None] + areas[None, :] - inter).clamp(min=1)).numpy()
    kept: list[int] = []
    for position in range(len(order)):
        if all(ious[position, other] <= iou for other in kept):
            kept.append(position)
    return [order[position] for position in kept]


class AutoMaskProposer:
    """An automatic mask generator (a grid of points over the whole image) as a proposer.

    ``generator`` is anything with ``generate(image) -> list[dict]`` returning
    ``segmentation`` (``H×W bool``) and ``predicted_iou``: SAM 2's ``SAM2AutomaticMaskGenerator``
    or segment-anything's ``SamAutomaticMaskGenerator`` with ``output_mode="binary_mask"``.
    The frame is first shrunk (never enlarged) so its short side is at most ``short_side`` and
    its long side at most ``long_side`` (the model resizes to its processing size anyway, and
    full-size masks for every grid point are what makes these generators slow); the kept
    masks are scaled back up to the frame. Ignores ``points``.
    """

    uses_points = False

    def __init__(
        self,
        generator: Any,
        *,
        short_side: int | None = None,
        long_side: int | None = None,
        max_masks: int = 64,
    ) -> None:
        self.generator = generator
        self.short_side = short_side
        self.long_side = long_side
        self.max_masks = max_masks
        self.last_timings: dict[str, float] = {}

    @timing.stage("proposals", count=len)
    def __call__(self, frame: np.ndarray, points: np.ndarray | None = None) -> list[Proposal]:
        height, width = frame.shape[:2]
        scale = 1.0
        if self.short_side:
            scale = min(scale, self.short_side / min(height, width))
        if self.long_side:
            scale = min(scale, self.long_side / max(height, width))
        small = frame if frame.flags.writeable else frame.copy()  # torch warns on read-only arrays
        if scale < 1.0:
            small = resize(frame, max(1, round(width * scale)), max(1, round(height * scale)))
        started = perf_counter()
        records = self.generator.generate(small)
        self.last_timings = {"generate": perf_counter() - started}
        records = sorted(records, key=lambda r: -float(r.get("predicted_iou", 0.0)))[: self.max_masks]
        proposals = []
        for record in records:
            mask = np.asarray(record["segmentation"], dtype=bool)
            if mask.shape != (height, width):
                mask = resize_mask(mask, width, height)
            proposals.append(Proposal(mask, float(record.get("predicted_iou", 0.0))))
        return proposals


def _build_points(
    video_predictor: Any = None,
    *,
    sam1: Any = None,
    points_per_side: int | None = None,
    random_weights: bool = False,
) -> MaskProposer:
    from .models import sam2_image_predictor

    if video_predictor is None:
        raise ValueError("the 'points' proposer needs the SAM 2 model")
    return PointPromptProposer(
        sam2_image_predictor(video_predictor),
        grid=max(2, points_per_side // 4) if points_per_side else 4,
        random_weights=random_weights,
    )


def _build_sam2_auto(
    video_predictor: Any = None,
    *,
    sam1: Any = None,
    points_per_side: int | None = None,
    random_weights: bool = False,
) -> MaskProposer:
    from .models import sam2_mask_generator

    if video_predictor is None:
        raise ValueError("the 'sam2-auto' proposer needs the SAM 2 model")
    generator = sam2_mask_generator(video_predictor, points_per_side or 16, random_weights)
    return AutoMaskProposer(generator, short_side=int(video_predictor.image_size))


def _build_sam1_auto(
    video_predictor: Any = None,
    *,
    sam1: Any = None,
    points_per_side: int | None = None,
    random_weights: bool = False,
) -> MaskProposer:
    from .models import sam1_mask_generator

    if sam1 is None:
        raise ValueError("the 'sam1-auto' proposer needs a segment-anything model (tracker.models.load_sam1)")
    generator = sam1_mask_generator(sam1, points_per_side or 16, random_weights)
    return AutoMaskProposer(generator, long_side=1024)


#: Proposer name → builder ``(video_predictor, *, sam1, points_per_side, random_weights)``.
#: ``points_per_side`` is the sparse grid's side for "points" (default 4) and the generator's
#: grid for the automatic ones (default 16).
PROPOSERS: dict[str, Callable[..., MaskProposer]] = {
    "points": _build_points,
    "sam2-auto": _build_sam2_auto,
    "sam1-auto": _build_sam1_auto,
}


def proposer_name(name: str) -> str:
    """The :data:`PROPOSERS` key for ``name``; the older settings values ``"sam2"`` and
    ``"sam1:<variant>"`` mean the automatic generators."""
    key = (name or "points").strip().lower()
    if key == "sam2":
        return "sam2-auto"
    if key.startswith("sam1") and key != "sam1-auto":
        return "sam1-auto"
    return key


def build_proposer(
    name: str,
    video_predictor: Any = None,
    *,
    sam1: Any = None,
    points_per_side: int | None = None,
    random_weights: bool = False,
) -> MaskProposer:
    """Build the proposer called ``name`` (see :func:`proposer_name`) from loaded models.

    Raises :class:`InputError` for an unknown name.
    """
    try:
        builder = PROPOSERS[proposer_name(name)]
    except KeyError:
        raise InputError(
            f"Unknown mask proposer {name!r}; choose one of {', '.join(sorted(PROPOSERS))}."
        ) from None
    return builder(video_predictor, sam1=sam1, points_per_side=points_per_side, random_weights=random_weights)


# --------------------------------------------------------------------------------------------
# Scoring masks
# --------------------------------------------------------------------------------------------


def expand_box(box: Box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` (xyxy) grown by ``margin`` of its width / height on every side, in whole pixels,
    clipped to the ``width×height`` frame (a box at the border grows inwards only)."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return (
        max(0, math.floor(x0 - dx)),
        max(0, math.floor(y0 - dy)),
        min(width, math.ceil(x1 + dx)),
        min(height, math.ceil(y1 + dy)),
    )


def crop_for_clip(
    frame: np.ndarray,
    mask: np.ndarray,
    margin: float = 0.15,
    dim: float = 0.6,
    *,
    square: bool = True,
) -> np.ndarray:
    """The image CLIP scores for one mask: ``H×W×3 uint8``.

    The mask's tight box grown by :func:`expand_box`, outside-mask pixels blended ``dim`` of the
    way towards grey (some context helps CLIP recognise things; the object should dominate), then
    padded with grey to a square when ``square`` (CLIP centre-crops, which would cut the ends off
    a long object). Raises ``ValueError`` for an empty mask or a mask not the frame's size.
    """
    height, width = frame.shape[:2]
    if mask.shape != (height, width):
        raise ValueError(f"mask is {mask.shape}, frame is {(height, width)}")
    box = mask_box(mask)
    if box is None:
        raise ValueError("cannot crop an empty mask")
    x0, y0, x1, y1 = expand_box(box, margin, width, height)
    crop = frame[y0:y1, x0:x1]
    if dim > 0:
        inside = mask[y0:y1, x0:x1, None]
        dimmed = crop.astype(np.float32) * (1.0 - dim) + GREY * dim
        crop = np.where(inside, crop, dimmed.round().astype(np.uint8))
    else:
        crop = crop.copy()
    if square:
        h, w = crop.shape[:2]
        side = max(h, w)
        if h != w:
            padded = np.full((side, side, 3), GREY, dtype=np.uint8)
            top, left = (side - h) // 2, (side - w) // 2
            padded[top : top + h, left : left + w] = crop
            crop = padded
    return np.ascontiguousarray(crop)


def combine_scores(
    features: np.ndarray,
    text_features: np.ndarray,
    negative_features: np.ndarray | None = None,
    negative_weight: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores of unit image ``features`` (N×D) for the prompt, and the negative prompt's raw scores.

    ``s_pos = 100·f·text``. Without a negative prompt that is the score. With one,
    ``s_neg = 100·f·neg`` and ``score = s_pos − w·softplus(s_neg − s_pos)``: ``s_pos`` plus ``w``
    times ``log P(prompt | image, {prompt, negative})`` under CLIP's zero-shot classifier (a
    softmax over the two logits at CLIP's logit scale of 100). A crop the negative describes
    much better loses about ``s_neg − s_pos``; one it clearly does not describe loses nearly
    nothing (at most ``w·log 2`` when the two tie).
    """
    positive = 100.0 * features @ text_features
    if negative_features is None:
        return positive, None
    negative = 100.0 * features @ negative_features
    return positive - negative_weight * np.logaddexp(0.0, negative - positive), negative


@timing.stage("crop scoring", count=len)
def score_masks(
    frame: np.ndarray,
    masks: Sequence[np.ndarray],
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    negative_features: np.ndarray | None = None,
    *,
    frame_idx: int = 0,
    time: float = 0.0,
    frame_score: float = 0.0,
    margin: float = 0.15,
    dim: float = 0.6,
    negative_weight: float = 1.0,
    min_area_fraction: float = 0.001,
    max_area_fraction: float = 0.95,
    batch_size: int = 32,
    thumb_size: int | None = 224,
) -> list[Candidate]:
    """Score each ``H×W bool`` mask of ``frame`` against the prompt; candidates best first.

    Masks under ``min_area_fraction`` or over ``max_area_fraction`` of the frame are dropped
    (specks and "the whole picture" are never what someone typed). The rest are cut out with
    :func:`crop_for_clip`, shrunk to ``thumb_size`` (CLIP's input side; None keeps them as
    they are) and encoded in batches of ``batch_size``; see :func:`combine_scores`
    for the score. ``negative_score`` is ``100·crop·neg`` (None without a negative prompt).
    """
    height, width = frame.shape[:2]
    pixels = float(height * width)
    kept, crops = [], []
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        area = int(mask.sum())
        if not min_area_fraction * pixels <= area <= max_area_fraction * pixels or area == 0:
            continue
        kept.append((mask, area))
        crop = crop_for_clip(frame, mask, margin, dim)
        if thumb_size and crop.shape[0] > thumb_size:  # square: shrink here, cheaply, in uint8
            crop = resize(crop, thumb_size, thumb_size)
        crops.append(crop)
    if not kept:
        return []
    features = encode_images(encoder, crops, batch_size)
    scores, negatives = combine_scores(features, text_features, negative_features, negative_weight)
    candidates = [
        Candidate(
            frame_idx=frame_idx,
            time=time,
            mask=mask,
            box=mask_box(mask),
            score=float(scores[i]),
            frame_score=float(frame_score),
            negative_score=None if negatives is None else float(negatives[i]),
            area=area,
        )
        for i, (mask, area) in enumerate(kept)
    ]
    return sorted(candidates, key=lambda c: -c.score)


def mask_iou(a: np.ndarray, b: np.ndarray, box_a: Box | None = None, box_b: Box | None = None) -> float:
    """IoU of two ``H×W bool`` masks; boxes (when known) skip work for masks that cannot touch."""
    box_a = box_a if box_a is not None else mask_box(a)
    box_b = box_b if box_b is not None else mask_box(b)
    if box_a is None or box_b is None:
        return 0.0
    x0, y0 = int(max(box_a[0], box_b[0])), int(max(box_a[1], box_b[1]))
    x1, y1 = int(min(box_a[2], box_b[2])), int(min(box_a[3], box_b[3]))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    inter = int(np.count_nonzero(a[y0:y1, x0:x1] & b[y0:y1, x0:x1]))
    union = int(a.sum()) + int(b.sum()) - inter
    return inter / union if union else 0.0


def suppress_overlaps(candidates: Iterable[Candidate], iou: float = 0.5) -> list[Candidate]:
    """Keep one candidate per instance: best first, dropping any candidate whose mask overlaps a
    kept one **on the same frame** with IoU above ``iou``. Distinct instances (disjoint masks)
    and candidates on different frames all survive. Returns the survivors best first."""
    kept: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: -c.score):
        if all(
            other.frame_idx != candidate.frame_idx
            or mask_iou(candidate.mask, other.mask, candidate.box, other.box) <= iou
            for other in kept
        ):
            kept.append(candidate)
    return kept


# --------------------------------------------------------------------------------------------
# The finder
# --------------------------------------------------------------------------------------------

_RANK_SHARE = 0.25  # of the progress bar; the mask frames share the rest


class CandidateFinder:
    """Text prompt → candidates, streamed; see the module docstring for the pipeline.

    ``encoder`` is CLIP (:class:`TextImageEncoder`, e.g. ``tracker.models.ClipModel``).
    ``proposer`` is a :class:`MaskProposer`, or the name of one in :data:`PROPOSERS`, built
    here from ``sam2`` (the SAM 2 video predictor, whose weights are shared) or ``sam1`` (a
    segment-anything model, or a zero-argument callable that loads one, called only for
    ``"sam1-auto"``). ``points_per_side`` is the automatic generators' grid; the "points"
    proposer's sparse grid is a quarter of it a side (16 → 4×4), 4×4 when None.

    ``options`` is a :class:`FinderOptions`; keyword ``overrides`` name any of its fields
    (``stride=``, ``threshold=``, …) and replace it unless the value is None ("the default").
    Random-weights mode is on when ``options.random_weights`` or the encoder says it is
    untrained (``encoder.random_weights``).

    ``model_lock`` (held around every SAM call; default: the model's ``tracker_lock`` when it
    has one) and ``autocast`` (a zero-argument callable returning the context to run SAM in,
    e.g. bfloat16) come from the caller that shares the models. Not thread-safe otherwise.
    """

    def __init__(
        self,
        encoder: TextImageEncoder,
        sam2: Any = None,
        options: FinderOptions | None = None,
        *,
        proposer: str | MaskProposer = "points",
        points_per_side: int | None = None,
        sam1: Any = None,
        model_lock: AbstractContextManager | None = None,
        autocast: Callable[[], AbstractContextManager] | None = None,
        **overrides: Any,
    ) -> None:
        options = options or FinderOptions()
        unknown = set(overrides) - {f.name for f in fields(FinderOptions)}
        if unknown:
            raise TypeError(f"unknown finder options: {', '.join(sorted(unknown))}")
        given = {key: value for key, value in overrides.items() if value is not None}
        if getattr(encoder, "random_weights", False):
            given["random_weights"] = True
        self.options = dc_replace(options, **given) if given else options
        self.encoder = encoder
        if isinstance(proposer, str):
            if proposer_name(proposer) == "sam1-auto" and _is_loader(sam1):
                sam1 = sam1()
            proposer = build_proposer(
                proposer,
                sam2,
                sam1=sam1,
                points_per_side=points_per_side,
                random_weights=self.options.random_weights,
            )
        self.proposer = proposer
        model = sam2 if sam2 is not None else sam1
        self._model_lock = model_lock or getattr(model, "tracker_lock", None) or nullcontext()
        self._autocast = autocast or nullcontext

    def find(
        self,
        reader: FrameSource,
        prompt: str,
        negative_prompt: str | None = None,
        cancel: threading.Event | None = None,
        *,
        take_best: bool | None = None,
    ) -> Iterator[FinderEvent]:
        """Rank frames, propose and score masks; yield :class:`FinderEvent` as work happens.

        The prompt is checked here, before the generator is returned, so an empty prompt raises
        :class:`InputError` at the call. Events, in order: ``"rank"`` progress; then per chosen
        frame (best frame first) ``"masks"`` and ``"score"`` progress and, once that frame is
        scored, an event with ``new_frame`` set and ``candidates`` = all passing candidates so
        far, best first (before the next frame's work starts); last a ``"done"`` event with the
        final list (progress 1.0).

        Nothing passes ``threshold`` → :class:`NoCandidates`, raised by the generator after the
        last frame, unless ``take_best`` (argument, else ``options.take_best``): then the
        ``"done"`` event carries the best candidates with ``below_threshold=True``. In
        random-weights mode the threshold is ignored throughout (each frame's best candidates
        stream as usual) and a warning is logged; NoCandidates then only means no masks at all.

        ``cancel`` is checked between ranked frames and between the steps of each mask frame; when set
        the generator raises :class:`Cancelled`. Candidates already yielded stay valid.
        """
        prompt = check_prompt(prompt)
        negative = (
            check_prompt(negative_prompt, what="negative prompt")
            if negative_prompt and negative_prompt.strip()
            else None
        )
        take_best = self.options.take_best if take_best is None else take_best
        return self._run(reader, prompt, negative, cancel, take_best)

    def find_all(
        self,
        reader: FrameSource,
        prompt: str,
        negative_prompt: str | None = None,
        cancel: threading.Event | None = None,
        *,
        take_best: bool | None = None,
    ) -> list[Candidate]:
        """:meth:`find` run to the end; the final candidates, best first."""
        final: list[Candidate] = []
        for event in self.find(reader, prompt, negative_prompt, cancel, take_best=take_best):
            if event.stage == "done":
                final = event.candidates
        return final

    def _run(
        self,
        reader: FrameSource,
        prompt: str,
        negative: str | None,
        cancel: threading.Event | None,
        take_best: bool,
    ) -> Iterator[FinderEvent]:
        options = self.options
        info = reader.info
        started = perf_counter()
        if options.random_weights:
            logger.warning(
                "Random weights: CLIP scores are noise, so the threshold %.1f is ignored and the "
                "best-scoring masks are returned whatever they show.",
                options.threshold,
            )
        _check(cancel)
        text_features = encode_prompt(self.encoder, prompt)
        negative_features = encode_prompt(self.encoder, negative) if negative else None

        stride = options.stride or default_stride(info.fps)
        min_gap = options.min_gap if options.min_gap is not None else default_min_gap(info.fps, stride)
        yield FinderEvent("rank", 0.0, f"Looking for {prompt!r}: ranking one frame in {stride}…")
        scores: dict[int, float] = {}
        for done, total, so_far in iter_frame_scores(
            reader,
            self.encoder,
            text_features,
            stride,
            batch_size=options.batch_size,
            thumb_size=options.thumb_size,
            cancel=cancel,
        ):
            scores = so_far
            yield FinderEvent("rank", _RANK_SHARE * done / max(total, 1), f"Ranked {done} of {total} frames")
        ranked = tuple(
            RankedFrame(frame_idx, score, info.time_of(frame_idx))
            for frame_idx, score in pick_frames(scores, options.top_frames, min_gap)
        )
        logger.info(
            "ranked %d frames in %.2f s; chose %s",
            len(scores),
            perf_counter() - started,
            ", ".join(f"{r.frame_idx} ({r.score:.1f})" for r in ranked),
        )
        if not ranked:
            raise NoCandidates(prompt, None, options.threshold)

        ignore_threshold = options.random_weights
        passing: list[Candidate] = []
        everything: list[Candidate] = []  # per-frame selection, threshold ignored
        share = (1.0 - _RANK_SHARE) / len(ranked)
        for position, frame in enumerate(ranked):
            base = _RANK_SHARE + position * share
            label = f"frame {frame.frame_idx} ({position + 1} of {len(ranked)})"
            _check(cancel)
            yield FinderEvent("masks", base, f"Finding objects on {label}…", list(passing), ranked=ranked)
            frame_started = perf_counter()
            image = reader.get(frame.frame_idx)
            points = None
            if self.proposer.uses_points and options.heat_peaks > 0:
                heat = clip_heatmap(
                    image,
                    self.encoder,
                    text_features,
                    negative_features,
                    scales=options.heat_scales,
                    overlap=options.heat_overlap,
                    negative_weight=options.negative_weight,
                    batch_size=options.batch_size,
                    thumb_size=options.thumb_size,
                )
                min_distance = min(options.heat_scales) * min(image.shape[:2]) / 2
                points = heat.peaks(options.heat_peaks, min_distance)
            heat_done = perf_counter()
            _check(cancel)
            with self._model_lock, self._autocast():
                proposals = self.proposer(image, points)
            proposed = perf_counter()
            _check(cancel)
            yield FinderEvent(
                "score",
                base + 0.6 * share,
                f"Scoring {len(proposals)} masks on {label}…",
                list(passing),
                ranked=ranked,
            )
            scored = score_masks(
                image,
                [p.mask for p in proposals],
                self.encoder,
                text_features,
                negative_features,
                frame_idx=frame.frame_idx,
                time=frame.time,
                frame_score=frame.score,
                margin=options.margin,
                dim=options.dim,
                negative_weight=options.negative_weight,
                min_area_fraction=options.min_area_fraction,
                max_area_fraction=options.max_area_fraction,
                batch_size=options.batch_size,
                thumb_size=options.thumb_size,
            )
            del image
            best_here = suppress_overlaps(scored, options.overlap_iou)[: options.per_frame]
            everything.extend(best_here)
            new = best_here if ignore_threshold else [c for c in best_here if c.score >= options.threshold]
            passing = _best_first(passing + new)
            logger.info(
                "%s: heat map %.2f s, %d proposals in %.2f s, %d scored in %.2f s, %d kept",
                label,
                heat_done - frame_started,
                len(proposals),
                proposed - heat_done,
                len(scored),
                perf_counter() - proposed,
                len(new),
            )
            yield FinderEvent(
                "score",
                base + share,
                f"{len(new)} candidate{'s' if len(new) != 1 else ''} on {label}",
                list(passing),
                new_frame=frame.frame_idx,
                ranked=ranked,
            )

        elapsed = perf_counter() - started
        if passing:
            yield FinderEvent(
                "done",
                1.0,
                f"Found {len(passing)} candidates for {prompt!r} in {elapsed:.1f} s",
                passing,
                ranked=ranked,
                below_threshold=False,
            )
            return
        best_score = max((c.score for c in everything), default=None)
        if everything and take_best:
            logger.warning(
                "nothing matched %r above %.1f (best %.1f); returning the best anyway",
                prompt,
                options.threshold,
                best_score,
            )
            yield FinderEvent(
                "done",
                1.0,
                f"Nothing matched {prompt!r} above {options.threshold:.1f}; showing the best "
                f"{len(everything)} (best score {best_score:.1f})",
                _best_first(everything),
                ranked=ranked,
                below_threshold=True,
            )
            return
        raise NoCandidates(prompt, best_score, options.threshold)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _is_loader(value: Any) -> bool:
    """A zero-argument loader, not a model (``torch.nn.Module`` instances are callable too)."""
    import torch

    return callable(value) and not isinstance(value, torch.nn.Module)


def _best_first(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: -c.score)


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("Finding candidates was stopped; the candidates already shown are kept.")


def to_numpy(values: Any) -> np.ndarray:
    """A float32 numpy array from a numpy array or a (CPU or GPU) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def encode_images(
    encoder: TextImageEncoder, images: Sequence[np.ndarray], batch_size: int = 32
) -> np.ndarray:
    """``N×D`` float32 unit rows for ``images``, encoded ``batch_size`` at a time."""
    rows = []
    for start in range(0, len(images), max(1, batch_size)):
        rows.append(to_numpy(encoder.encode_images(list(images[start : start + batch_size]))))
    features = np.concatenate(rows, axis=0) if rows else np.zeros((0, 0), np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (``H×W×3 uint8``) resized to ``width×height`` (bicubic, as CLIP's preprocessing)."""
    from PIL import Image

    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.array(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BICUBIC))


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """A bool mask resized to ``width×height`` (nearest neighbour)."""
    from PIL import Image

    return (
        np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)) > 127
    )


__all__ = [
    "AutoMaskProposer",
    "CandidateFinder",
    "FinderEvent",
    "FinderOptions",
    "FrameSource",
    "Heatmap",
    "MaskProposer",
    "PROPOSERS",
    "PointPromptProposer",
    "Proposal",
    "RankedFrame",
    "TextImageEncoder",
    "build_proposer",
    "check_prompt",
    "clip_heatmap",
    "combine_scores",
    "crop_for_clip",
    "encode_prompt",
    "expand_box",
    "frame_views",
    "iter_frame_scores",
    "mask_iou",
    "pick_frames",
    "prompt_notes",
    "proposer_name",
    "rank_frames",
    "score_masks",
    "suppress_overlaps",
    "window_grid",
]
