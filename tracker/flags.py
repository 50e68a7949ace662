"""Doubtful frames: where a track probably went wrong, found from per-frame statistics alone.

Each detector looks at one object's series of per-frame statistics (area, box, centroid,
SAM 2's presence score, and optionally CLIP similarity of the tracked crop to the prompt) and
raises a :class:`Flag` on the frames a person should look at:

==============  =======================================================  ==========================
reason          when                                                     ``value``
==============  =======================================================  ==========================
``vanished``    first tracked frame without the object after it was      frames it stays away
                present (not every absent frame)
``reappeared``  first frame with the object again after an absence       frames it was away
``area_jump``   area > ``area_factor`` × or < 1/``area_factor`` × the    area / running level
                running level (median of the last ``history`` areas)
``too_fast``    centroid moved more per frame than the track allows:     pixels per frame
                ``max(speed_factor × median recent speed,
                speed_floor_size × √area, speed_floor_px)``
``low_score``   SAM 2 presence probability < ``min_score`` on a frame    the score
                where the mask is not empty (every such frame)
``clip_drop``   CLIP similarity < running median − ``clip_delta``        running level − similarity
``overlap``     two objects' **boxes** have IoU > ``overlap_iou``        the box IoU
                (every such frame, one flag per object)
==============  =======================================================  ==========================

Events versus states. ``vanished``, ``reappeared``, ``area_jump``, ``too_fast`` and
``clip_drop`` are *events*: they land on the frame where the change happens, and the new state
becomes the reference, so a lasting change is flagged once. A change *back* is a second genuine
event: an object that teleports at frame 20 and jumps back at 21 is flagged at 20 and 21; one
that teleports and stays is flagged at 20 only; a mask that doubles and stays doubled is flagged
once, a mask that doubles for one frame is flagged on entering and leaving. A run of too-fast
frames that keeps going the same way (the object really speeds up) is flagged on its first
frame only, and its speed becomes the new normal. Only CLIP *drops* are flagged, not recoveries.
``low_score`` and ``overlap`` are *states*: every frame where they hold is flagged, because an
identity swap or a wrong mask can happen on any of them.

Why boxes for ``overlap``: the tracker gives each pixel to one object, so its masks never
overlap; two objects fighting over the same thing show up as heavily overlapping boxes.

The frame a track starts on and the frame an object reappears on are never judged for
``area_jump``/``too_fast`` (there is no level yet; the reappearance is its own flag): the area
and speed levels need ``min_history`` frames first, and the area level restarts after an
absence because an object coming back from an occlusion often returns at a different size.

Inputs are plain: a per-object series ``{object_id: {frame: stats}}`` where ``stats`` is a
:class:`tracker.masks.MaskStats` (what a ``ResultStore`` keeps), anything else with ``area``,
``box``, ``centroid`` and ``score`` attributes, or a dict with those keys; ``None`` or area 0 means absent.
Frames not in the series were not tracked and are skipped (they neither vanish nor count as
a gap); list absent frames explicitly or pass ``frames``. :func:`flags_from_store` adapts a
``ResultStore``; :func:`stats_from_masks` builds a series from ``{frame: {object_id: mask}}``.
Conventions as in :mod:`tracker.types`: frames 0-based, boxes ``xyxy`` with pixel-edge
coordinates, centroids ``(x, y)`` as the mean column / row index (as ``MaskStats``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .masks import MaskStats
from .types import Box, Point

log = logging.getLogger(__name__)

VANISHED = "vanished"
REAPPEARED = "reappeared"
AREA_JUMP = "area_jump"
TOO_FAST = "too_fast"
LOW_SCORE = "low_score"
CLIP_DROP = "clip_drop"
OVERLAP = "overlap"
REASONS: tuple[str, ...] = (VANISHED, REAPPEARED, AREA_JUMP, TOO_FAST, LOW_SCORE, CLIP_DROP, OVERLAP)

# Codes of :func:`timeline`.
ABSENT, PRESENT, FLAGGED = 0, 1, 2

FLAGS_JSON_VERSION = 1


@dataclass(frozen=True)
class FlagThresholds:
    """When a detector fires. The defaults are tuned so that smooth motion, steady growth
    (an object walking towards the camera) and ±20 % mask jitter never fire, while the gross
    failures a person should look at do:

    * ``history=5``: the running level is the median of the last 5 visible frames (the clip
      series: 5 samples) — long enough to shrug off one bad frame, short enough to follow an
      object that changes size or speed over a second.
    * ``min_history=3``: areas (and frame-to-frame speeds) measured before area and speed are
      judged, after the start of a track or a reappearance; ``clip_min_history=3`` the same
      for CLIP samples.
    * ``area_factor=1.8``: a mask that grows ≥ 1.8× or shrinks to ≤ 0.56× of its level in one
      step; a doubling (a leak onto a neighbour) or a halving (lost half) is caught, SAM 2's
      frame-to-frame jitter (typically < 20 %) is not.
    * ``speed_factor=4``, ``speed_floor_size=0.5``, ``speed_floor_px=4``: a step must be over 4×
      the recent median speed *and* over half the object's size (√area) *and* over 4 px, so a
      still object's jitter or a steadily moving one never fires, a jump to another object does.
    * ``min_score=0.5``: SAM 2's own presence decision boundary (sigmoid of logit 0).
    * ``clip_delta=5``: in the project's CLIP score units (100 · cosine, as
      :class:`tracker.types.Candidate`); a matching crop scores ~25-35 with ~1-2 noise, a wrong
      object 5-10 lower. Use 0.05 for raw cosine similarities.
    * ``overlap_iou=0.5``: the box IoU above which two objects are fighting over the same thing.
    * ``min_area=1``: masks smaller than this many pixels count as absent.
    * ``reasons``: the detectors to run.
    """

    history: int = 5
    min_history: int = 3
    area_factor: float = 1.8
    speed_factor: float = 4.0
    speed_floor_size: float = 0.5
    speed_floor_px: float = 4.0
    min_score: float = 0.5
    clip_delta: float = 5.0
    clip_history: int = 5
    clip_min_history: int = 3
    overlap_iou: float = 0.5
    min_area: int = 1
    reasons: tuple[str, ...] = REASONS

    def __post_init__(self) -> None:
        for name in ("history", "min_history", "clip_history", "clip_min_history", "min_area"):
            if getattr(self, name) < 1:
                raise InputError(f"Flag threshold {name} must be at least 1, got {getattr(self, name)}.")
        if self.area_factor <= 1:
            raise InputError(f"Flag threshold area_factor must be above 1, got {self.area_factor}.")
        for name in ("speed_factor", "speed_floor_size", "speed_floor_px", "clip_delta"):
            if getattr(self, name) < 0:
                raise InputError(f"Flag threshold {name} cannot be negative, got {getattr(self, name)}.")
        if not 0 <= self.overlap_iou <= 1:
            raise InputError(f"Flag threshold overlap_iou must be in [0, 1], got {self.overlap_iou}.")
        unknown = [r for r in self.reasons if r not in REASONS]
        if unknown:
            raise InputError(f"Unknown flag reason(s) {unknown}; known: {', '.join(REASONS)}.")


@dataclass(frozen=True)
class Flag:
    """A doubtful frame of one object: why (``reason``, one of :data:`REASONS`), the measured
    ``value`` that crossed the threshold (see the module table) and a one-sentence ``message``
    for people. ``other_object_id`` names the other object of an ``overlap``."""

    frame: int
    object_id: int
    reason: str
    value: float
    message: str
    other_object_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["value"] = round(float(self.value), 4)
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Flag:
        other = row.get("other_object_id")
        return cls(
            int(row["frame"]),
            int(row["object_id"]),
            str(row["reason"]),
            float(row["value"]),
            str(row.get("message", "")),
            None if other is None else int(other),
        )


#: Reasons of the flags :func:`found_flags` raises (not detectors: they come from discovery's records).
DISCOVERED = "discovered"
REACQUIRED = "reacquired"
FOUND_REASONS: tuple[str, ...] = (DISCOVERED, REACQUIRED)


def found_flags(records: Iterable[Any], fps: float | None = None) -> list[Flag]:
    """One flag per discovery and per re-acquisition (:class:`tracker.discovery.FoundRecord` s),
    on the frame where it happened, so a person checks each with next / previous flagged.
    ``value`` is the candidate's score there; accepted objects raise none."""
    flags = []
    for record in records:
        if record.kind not in FOUND_REASONS:
            continue
        score = float(record.score) if record.score is not None else 0.0
        if record.kind == DISCOVERED:
            start = "" if record.first_frame is None else f", tracked back to frame {record.first_frame}"
            message = f"New object found here while tracking (score {score:.1f}{start}); check that it is what you asked for."
        else:
            message = f"Lost object found again here (score {score:.1f}); check it is the same one."
        flags.append(Flag(int(record.frame), int(record.object_id), record.kind, score, message))
    flags.sort(key=_sort_key)
    return flags


def _sort_key(flag: Flag) -> tuple[int, int, int]:
    return flag.frame, flag.object_id, REASONS.index(flag.reason) if flag.reason in REASONS else len(REASONS)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def compute_flags(
    stats: Mapping[Any, Any],
    clip_scores: Mapping[Any, Any] | None = None,
    thresholds: FlagThresholds | None = None,
    *,
    frames: Iterable[int] | None = None,
) -> list[Flag]:
    """Every flag of every object, sorted by frame, then object id, then :data:`REASONS` order.

    ``stats`` is ``{object_id: {frame: stats}}`` (or ``{(frame, object_id): stats}``), see the
    module docstring. ``clip_scores`` is ``{object_id: {frame: similarity}}`` (or keyed
    ``(frame, object_id)``) on whichever frames were sampled. ``frames`` are the tracked frames;
    by default every frame that appears in ``stats``.
    """
    th = thresholds or FlagThresholds()
    series = _normalize_series(stats)
    tracked = (
        sorted({int(f) for f in frames})
        if frames is not None
        else sorted({frame for per_frame in series.values() for frame in per_frame})
    )
    flags: list[Flag] = []
    for object_id in sorted(series):
        flags.extend(_track_flags(object_id, tracked, series[object_id], th))
    if clip_scores and CLIP_DROP in th.reasons:
        for object_id, samples in sorted(_normalize_scores(clip_scores).items()):
            flags.extend(_clip_flags(object_id, samples, th))
    if OVERLAP in th.reasons:
        flags.extend(_overlap_flags(tracked, series, th))
    flags.sort(key=_sort_key)
    log.debug("%d flags over %d objects and %d frames", len(flags), len(series), len(tracked))
    return flags


def flags_from_store(
    store: Any,
    clip_scores: Mapping[Any, Any] | None = None,
    thresholds: FlagThresholds | None = None,
) -> list[Flag]:
    """:func:`compute_flags` over a ``ResultStore`` (``frames()``, ``object_ids`` and
    ``stats(frame, object_id)`` or ``mask(frame, object_id)``)."""
    series = series_from_store(store)
    frames = sorted(int(f) for f in store.frames())
    return compute_flags(series, clip_scores, thresholds, frames=frames)


def series_from_store(store: Any) -> dict[int, dict[int, MaskStats | None]]:
    """``{object_id: {frame: MaskStats or None}}`` for every tracked frame of a ``ResultStore``."""
    frames = sorted(int(f) for f in store.frames())
    series: dict[int, dict[int, MaskStats | None]] = {}
    for object_id in _store_object_ids(store):
        series[object_id] = {frame: _store_stats(store, frame, object_id) for frame in frames}
    return series


def stats_from_masks(
    masks: Mapping[int, Mapping[int, np.ndarray | None]],
    scores: Mapping[int, Mapping[int, float]] | None = None,
) -> dict[int, dict[int, MaskStats | None]]:
    """A series from ``{frame: {object_id: H×W bool mask}}`` (what ``read_png_masks`` returns)
    and optional presence scores ``{frame: {object_id: score}}``. Every object gets an entry
    (``None`` when absent) on every frame of ``masks``."""
    object_ids = sorted({int(o) for per_frame in masks.values() for o in per_frame})
    series: dict[int, dict[int, MaskStats | None]] = {o: {} for o in object_ids}
    for frame in sorted(masks):
        per_frame = masks[frame]
        for object_id in object_ids:
            mask = per_frame.get(object_id)
            score = 1.0 if scores is None else float(scores.get(frame, {}).get(object_id, 1.0))
            series[object_id][int(frame)] = None if mask is None else MaskStats.from_mask(mask, score)
    return series


def _track_flags(
    object_id: int, frames: Sequence[int], series: Mapping[int, MaskStats | None], th: FlagThresholds
) -> list[Flag]:
    walk = _TrackWalk(object_id, th)
    flags: list[Flag] = []
    for frame in frames:
        stats = series.get(frame)
        if stats is None or stats.area < th.min_area:
            walk.absent(frame)
        else:
            flags += walk.present(frame, stats)
    if walk.vanished_at is not None and VANISHED in walk.wanted:
        flags.append(
            _vanished_flag(object_id, walk.vanished_at, frames[-1] - walk.vanished_at + 1, back=False)
        )
    return flags


class _TrackWalk:
    """One object's track walked frame by frame: what :func:`_track_flags` remembers between frames."""

    def __init__(self, object_id: int, th: FlagThresholds) -> None:
        self.object_id = object_id
        self.th = th
        self.wanted = set(th.reasons)
        self.seen = False  # present on some earlier frame
        self.present_before = False  # present on the previous tracked frame
        self.vanished_at: int | None = None
        self.areas: deque[float] = deque(maxlen=th.history)
        self.area_ready = False
        self.speeds: deque[float] = deque(maxlen=th.history)
        self.prev_frame: int | None = None
        self.prev_centroid: Point | None = None
        self.fast_origin: Point | None = None  # where a run of too-fast steps started

    def absent(self, frame: int) -> None:
        if self.present_before:
            self.vanished_at = frame
        self.present_before = False

    def present(self, frame: int, stats: MaskStats) -> list[Flag]:
        """The flags of a frame the object is on, in order: low score, then back / size / speed."""
        th, object_id = self.th, self.object_id
        flags: list[Flag] = []
        if stats.score is not None and stats.score < th.min_score and LOW_SCORE in self.wanted:
            flags.append(
                Flag(
                    frame,
                    object_id,
                    LOW_SCORE,
                    float(stats.score),
                    f"SAM 2 is unsure object {object_id} is there at frame {frame} "
                    f"(presence {stats.score:.2f}, below {th.min_score:.2f}).",
                )
            )
        if self.seen and not self.present_before:
            return flags + self._back(frame, stats)
        self.seen = self.present_before = True
        reference_area = float(np.median(self.areas)) if self.areas else float(stats.area)
        flags += self._area_step(frame, stats, reference_area)
        flags += self._speed_step(frame, stats, reference_area)
        self.prev_frame, self.prev_centroid = frame, stats.centroid
        return flags

    def _back(self, frame: int, stats: MaskStats) -> list[Flag]:
        """Back after an absence: flag it, and restart the area level (an object coming out of an
        occlusion may be partly hidden); the reappearance step is not a speed."""
        object_id = self.object_id
        flags: list[Flag] = []
        away = frame - (self.vanished_at if self.vanished_at is not None else frame)
        if VANISHED in self.wanted and self.vanished_at is not None:
            flags.append(_vanished_flag(object_id, self.vanished_at, away))
        if REAPPEARED in self.wanted:
            flags.append(
                Flag(
                    frame,
                    object_id,
                    REAPPEARED,
                    float(away),
                    f"Object {object_id} is back at frame {frame} after {away} frame(s) "
                    "away; check it is the same object.",
                )
            )
        self.vanished_at = None
        self.areas.clear()
        self.areas.append(float(stats.area))
        self.area_ready = len(self.areas) >= self.th.min_history
        self.present_before = True
        self.prev_frame, self.prev_centroid, self.fast_origin = frame, stats.centroid, None
        return flags

    def _area_step(self, frame: int, stats: MaskStats, reference_area: float) -> list[Flag]:
        th, object_id = self.th, self.object_id
        flags: list[Flag] = []
        if self.area_ready and AREA_JUMP in self.wanted:
            ratio = stats.area / reference_area
            if ratio > th.area_factor or ratio < 1 / th.area_factor:
                verb = "grew" if ratio > 1 else "shrank"
                flags.append(
                    Flag(
                        frame,
                        object_id,
                        AREA_JUMP,
                        ratio,
                        f"Object {object_id}'s mask {verb} to {ratio:.2f}× its usual size at frame "
                        f"{frame} ({stats.area} px, usually {reference_area:.0f} px).",
                    )
                )
                self.areas.clear()  # the new size is the reference from now on
        self.areas.append(float(stats.area))
        self.area_ready = self.area_ready or len(self.areas) >= th.min_history
        return flags

    def _speed_step(self, frame: int, stats: MaskStats, reference_area: float) -> list[Flag]:
        th, object_id = self.th, self.object_id
        previous = self.prev_centroid
        if stats.centroid is None or previous is None or self.prev_frame is None:
            return []
        step = math.dist(stats.centroid, previous)
        speed = step / (frame - self.prev_frame)
        if len(self.speeds) < th.min_history or TOO_FAST not in self.wanted:
            self.speeds.append(speed)
            return []
        limit = max(
            th.speed_factor * float(np.median(self.speeds)),
            th.speed_floor_size * math.sqrt(reference_area),
            th.speed_floor_px,
        )
        if speed <= limit:
            self.speeds.append(speed)
            self.fast_origin = None
            return []
        if self.fast_origin is None:
            self.fast_origin = previous
            message = (
                f"Object {object_id} jumped {step:.0f} px at frame {frame}, more than the "
                f"{limit:.0f} px per frame its track allows."
            )
            return [Flag(frame, object_id, TOO_FAST, speed, message)]
        if math.dist(stats.centroid, self.fast_origin) < math.dist(previous, self.fast_origin) / 2:
            self.fast_origin = None
            message = f"Object {object_id} jumped back {step:.0f} px at frame {frame}."
            return [Flag(frame, object_id, TOO_FAST, speed, message)]
        self.speeds.append(speed)  # it keeps going: a real speed-up, let the level follow
        return []


def _vanished_flag(object_id: int, frame: int, away: int, back: bool = True) -> Flag:
    how_long = f"gone for {away} frame(s)" if back else "and does not come back"
    return Flag(
        frame,
        object_id,
        VANISHED,
        float(away),
        f"Object {object_id} disappears at frame {frame} ({how_long}).",
    )


def _clip_flags(object_id: int, samples: Mapping[int, float], th: FlagThresholds) -> list[Flag]:
    flags: list[Flag] = []
    history: deque[float] = deque(maxlen=th.clip_history)
    ready = False
    for frame in sorted(samples):
        similarity = samples[frame]
        if similarity is None or math.isnan(similarity):
            continue
        if ready:
            level = float(np.median(history))
            if similarity < level - th.clip_delta:
                flags.append(
                    Flag(
                        frame,
                        object_id,
                        CLIP_DROP,
                        level - similarity,
                        f"Object {object_id} looks less like the prompt at frame {frame} "
                        f"(CLIP {similarity:.2f}, usually {level:.2f}).",
                    )
                )
                history.clear()  # the lower level is the reference now: a lasting drop flags once
        history.append(similarity)
        ready = ready or len(history) >= th.clip_min_history
    return flags


def _overlap_flags(
    frames: Sequence[int], series: Mapping[int, Mapping[int, MaskStats | None]], th: FlagThresholds
) -> list[Flag]:
    flags: list[Flag] = []
    object_ids = sorted(series)
    for frame in frames:
        boxes = []
        for object_id in object_ids:
            stats = series[object_id].get(frame)
            if stats is not None and stats.area >= th.min_area and stats.box is not None:
                boxes.append((object_id, stats.box))
        for i, (first, first_box) in enumerate(boxes):
            for second, second_box in boxes[i + 1 :]:
                iou = box_iou(first_box, second_box)
                if iou > th.overlap_iou:
                    message = (
                        f"Objects {first} and {second} overlap at frame {frame} (box IoU {iou:.2f}); "
                        "their identities may swap."
                    )
                    flags.append(Flag(frame, first, OVERLAP, iou, message, second))
                    flags.append(Flag(frame, second, OVERLAP, iou, message, first))
    return flags


def box_iou(a: Box, b: Box) -> float:
    """IoU of two ``xyxy`` boxes (0 when either has no area)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# --------------------------------------------------------------------------------------------
# Input normalisation
# --------------------------------------------------------------------------------------------


def _as_stats(value: Any) -> MaskStats | None:
    if value is None or isinstance(value, MaskStats):
        return value
    if isinstance(value, Mapping):
        get = value.get
    else:

        def get(name: str, default: Any = None) -> Any:
            return getattr(value, name, default)

    area = get("area")
    if area is None:
        raise InputError(f"Per-frame stats need an area, got {value!r}.")
    box = get("box")
    centroid = get("centroid")
    score = get("score", 1.0)
    if box is not None:
        box = tuple(float(v) for v in box)
    if centroid is not None:
        centroid = (float(centroid[0]), float(centroid[1]))
    elif box is not None:
        centroid = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    return MaskStats(int(area), box, centroid, 1.0 if score is None else float(score))


def _normalize_series(stats: Mapping[Any, Any]) -> dict[int, dict[int, MaskStats | None]]:
    series: dict[int, dict[int, MaskStats | None]] = {}
    for key, value in stats.items():
        if isinstance(key, tuple):  # (frame, object_id)
            frame, object_id = key
            series.setdefault(int(object_id), {})[int(frame)] = _as_stats(value)
        else:
            if not isinstance(value, Mapping):
                raise InputError(
                    f"Stats must be {{object_id: {{frame: stats}}}} or {{(frame, object_id): stats}}; "
                    f"object {key!r} maps to a {type(value).__name__}."
                )
            series[int(key)] = {int(frame): _as_stats(s) for frame, s in value.items()}
    return series


def _normalize_scores(scores: Mapping[Any, Any]) -> dict[int, dict[int, float]]:
    out: dict[int, dict[int, float]] = {}
    for key, value in scores.items():
        if isinstance(key, tuple):  # (frame, object_id)
            frame, object_id = key
            if value is not None:
                out.setdefault(int(object_id), {})[int(frame)] = float(value)
        else:
            out[int(key)] = {int(frame): float(v) for frame, v in value.items() if v is not None}
    return out


def _store_object_ids(store: Any) -> list[int]:
    ids = store.object_ids
    return sorted(int(i) for i in (ids() if callable(ids) else ids))


def _store_stats(store: Any, frame: int, object_id: int) -> MaskStats | None:
    try:
        if hasattr(store, "stats"):
            return _as_stats(store.stats(frame, object_id))
        mask = store.mask(frame, object_id)
    except KeyError:  # the store has nothing for this object on this frame: absent
        return None
    return None if mask is None else MaskStats.from_mask(mask)


# --------------------------------------------------------------------------------------------
# For the UI
# --------------------------------------------------------------------------------------------


def _matching(flags: Iterable[Flag], object_id: int | None, reasons: Iterable[str] | None) -> list[Flag]:
    wanted = None if reasons is None else set(reasons)
    return [
        f
        for f in flags
        if (object_id is None or f.object_id == object_id) and (wanted is None or f.reason in wanted)
    ]


def next_flagged(
    flags: Iterable[Flag], frame: int, object_id: int | None = None, reasons: Iterable[str] | None = None
) -> int | None:
    """The first flagged frame after ``frame`` (of ``object_id``, for ``reasons``), or None."""
    later = [f.frame for f in _matching(flags, object_id, reasons) if f.frame > frame]
    return min(later) if later else None


def previous_flagged(
    flags: Iterable[Flag], frame: int, object_id: int | None = None, reasons: Iterable[str] | None = None
) -> int | None:
    """The last flagged frame before ``frame`` (of ``object_id``, for ``reasons``), or None."""
    earlier = [f.frame for f in _matching(flags, object_id, reasons) if f.frame < frame]
    return max(earlier) if earlier else None


def flags_at(flags: Iterable[Flag], frame: int, object_id: int | None = None) -> list[Flag]:
    """The flags on one frame (of one object), e.g. to show their messages."""
    return [f for f in _matching(flags, object_id, None) if f.frame == frame]


def timeline(source: Any, flags: Iterable[Flag], num_frames: int, object_id: int) -> np.ndarray:
    """Per-frame state of one object for the UI's strip: ``num_frames`` uint8 codes,
    :data:`ABSENT` (0: absent or not tracked), :data:`PRESENT` (1) or :data:`FLAGGED` (2: any
    flag of this object, absent frames included, e.g. ``vanished``).

    ``source`` is a ``ResultStore`` or a series ``{object_id: {frame: stats}}``.
    """
    if num_frames < 0:
        raise InputError(f"num_frames cannot be negative, got {num_frames}.")
    codes = np.zeros(num_frames, dtype=np.uint8)
    if hasattr(source, "frames") and (hasattr(source, "stats") or hasattr(source, "mask")):
        per_frame = {
            int(f): _store_stats(source, int(f), object_id)
            for f in source.frames()
            if 0 <= int(f) < num_frames
        }
    else:
        per_frame = _normalize_series(source).get(object_id, {})
    for frame, stats in per_frame.items():
        if 0 <= frame < num_frames and stats is not None and stats.area > 0:
            codes[frame] = PRESENT
    for flag in flags:
        if flag.object_id == object_id and 0 <= flag.frame < num_frames:
            codes[flag.frame] = FLAGGED
    return codes


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def write_flags_json(
    flags: Iterable[Flag], path: str | os.PathLike[str], thresholds: FlagThresholds | None = None
) -> Path:
    """``{"version": 1, "thresholds": {...}, "flags": [{frame, object_id, reason, value,
    message, other_object_id}, ...]}``, written atomically. Returns the path."""
    th = thresholds or FlagThresholds()
    document = {
        "version": FLAGS_JSON_VERSION,
        "thresholds": {
            f.name: (list(v) if isinstance(v := getattr(th, f.name), tuple) else v) for f in fields(th)
        },
        "flags": [flag.to_dict() for flag in sorted(flags, key=_sort_key)],
    }
    path = Path(path)
    _atomic_write_text(path, json.dumps(document, indent=2) + "\n")
    return path


def read_flags_json(path: str | os.PathLike[str]) -> list[Flag]:
    """The flags :func:`write_flags_json` wrote."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return [Flag.from_dict(row) for row in document["flags"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path} is not a flags file ({error}).") from None


def write_flags_csv(flags: Iterable[Flag], path: str | os.PathLike[str]) -> Path:
    """One row per flag, columns ``frame, object, reason, value`` (frames 0-based), atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frame", "object", "reason", "value"])
    for flag in sorted(flags, key=_sort_key):
        writer.writerow([flag.frame, flag.object_id, flag.reason, f"{flag.value:.4f}"])
    path = Path(path)
    _atomic_write_text(path, buffer.getvalue())
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    from .results import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
