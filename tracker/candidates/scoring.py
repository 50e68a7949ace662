"""Candidate masks scored against the prompt: CLIP crops, scores, one candidate per instance.

:func:`score_masks` cuts each mask out (:func:`crop_for_clip`: the mask's box plus a margin, the
background dimmed towards grey, padded square) and scores all crops of a frame in one CLIP batch
(:func:`crop_features`, :func:`~tracker.candidates.clip.combine_scores`). Masks under 0.1 % or
over 95 % of the frame are dropped. :func:`suppress_overlaps` keeps one mask per instance (so
"all the red cars" gives several objects); :func:`best_per_frame` keeps the best few of a frame
and :func:`above_threshold` those whose score reaches the threshold. :func:`score_candidates`
is the three in a row for one frame: proposals in, candidates out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import timing
from ..masks import mask_box, mask_iou
from ..types import Box, Candidate
from .clip import TextImageEncoder, combine_scores, encode_images, resize
from .options import FinderOptions

#: Grey that dimmed backgrounds and square padding blend towards (CLIP's mean pixel is ~0.45).
GREY = 128


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


def crop_features(
    frame: np.ndarray,
    masks: Sequence[np.ndarray],
    encoder: TextImageEncoder,
    *,
    margin: float = 0.15,
    dim: float = 0.6,
    batch_size: int = 32,
    thumb_size: int | None = 224,
) -> np.ndarray:
    """``N×D`` float32 unit CLIP features of each non-empty ``H×W bool`` mask's crop of ``frame``.

    Each mask is cut out with :func:`crop_for_clip` (``margin``, ``dim``), shrunk to
    ``thumb_size`` when bigger (CLIP's input side, in uint8, cheaply; None keeps the crops as
    they are and leaves the resizing to the encoder) and encoded ``batch_size`` at a time.
    """
    crops = []
    for mask in masks:
        crop = crop_for_clip(frame, mask, margin, dim)
        if thumb_size and crop.shape[0] > thumb_size:  # square: shrink here, cheaply, in uint8
            crop = resize(crop, thumb_size, thumb_size)
        crops.append(crop)
    return encode_images(encoder, crops, batch_size)


def crop_scores(
    frame: np.ndarray,
    masks: Sequence[np.ndarray],
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    **crop_options: Any,
) -> np.ndarray:
    """``(N,)`` scores ``100·crop·text`` of each mask's crop (:func:`crop_features`, which takes
    ``crop_options``): how much each tracked object still looks like the prompt."""
    scores, _ = combine_scores(crop_features(frame, masks, encoder, **crop_options), text_features)
    return scores


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
    (specks and "the whole picture" are never what someone typed). The rest go through
    :func:`crop_features`; see :func:`~tracker.candidates.clip.combine_scores` for the score.
    ``negative_score`` is ``100·crop·neg`` (None without a negative prompt); ``embedding`` the
    crop's unit CLIP features (the ones scored, kept for the exemplar scores).
    """
    height, width = frame.shape[:2]
    pixels = float(height * width)
    kept: list[tuple[np.ndarray, int, Box]] = []
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        area = int(mask.sum())
        sized = area > 0 and min_area_fraction * pixels <= area <= max_area_fraction * pixels
        box = mask_box(mask) if sized else None
        if box is None:
            continue
        kept.append((mask, area, box))
    if not kept:
        return []
    features = crop_features(
        frame,
        [mask for mask, _, _ in kept],
        encoder,
        margin=margin,
        dim=dim,
        batch_size=batch_size,
        thumb_size=thumb_size,
    )
    scores, negatives = combine_scores(features, text_features, negative_features, negative_weight)
    candidates = [
        Candidate(
            frame_idx=frame_idx,
            time=time,
            mask=mask,
            box=box,
            score=float(scores[i]),
            frame_score=float(frame_score),
            negative_score=None if negatives is None else float(negatives[i]),
            area=area,
            embedding=np.asarray(features[i], np.float32),
        )
        for i, (mask, area, box) in enumerate(kept)
    ]
    return best_first(candidates)


def suppress_overlaps(candidates: Iterable[Candidate], iou: float = 0.5) -> list[Candidate]:
    """Keep one candidate per instance: best first, dropping any candidate whose mask overlaps a
    kept one **on the same frame** with IoU above ``iou``. Distinct instances (disjoint masks)
    and candidates on different frames all survive. Returns the survivors best first."""
    kept: list[Candidate] = []
    for candidate in best_first(candidates):
        if all(
            other.frame_idx != candidate.frame_idx
            or mask_iou(candidate.mask, other.mask, empty=0.0, box_a=candidate.box, box_b=other.box) <= iou
            for other in kept
        ):
            kept.append(candidate)
    return kept


def best_per_frame(scored: Iterable[Candidate], options: FinderOptions) -> list[Candidate]:
    """One candidate per instance (:func:`suppress_overlaps` at ``options.overlap_iou``), then
    the ``options.per_frame`` best, best first; the threshold is not applied here."""
    return suppress_overlaps(scored, options.overlap_iou)[: options.per_frame]


def above_threshold(candidates: Iterable[Candidate], options: FinderOptions) -> list[Candidate]:
    """The candidates whose score reaches ``options.threshold``; all of them with random
    weights (untrained scores are noise, so no threshold means anything)."""
    if options.random_weights:
        return list(candidates)
    return [candidate for candidate in candidates if candidate.score >= options.threshold]


def score_candidates(
    frame: np.ndarray,
    masks: Sequence[np.ndarray],
    encoder: TextImageEncoder,
    text_features: np.ndarray,
    negative_features: np.ndarray | None = None,
    options: FinderOptions | None = None,
    *,
    frame_idx: int = 0,
    time: float = 0.0,
    frame_score: float = 0.0,
) -> list[Candidate]:
    """Proposed masks of one frame → the candidates a find keeps there, best first.

    :func:`score_masks` (crops scored by CLIP against ``text_features``, lowered where
    ``negative_features`` match better), :func:`best_per_frame`, :func:`above_threshold`, all
    with ``options`` (default :class:`FinderOptions`). ``frame_idx``, ``time`` (s) and
    ``frame_score`` are copied into the candidates.
    """
    options = options or FinderOptions()
    scored = score_masks(
        frame,
        masks,
        encoder,
        text_features,
        negative_features,
        frame_idx=frame_idx,
        time=time,
        frame_score=frame_score,
        **options.scoring(),
    )
    return above_threshold(best_per_frame(scored, options), options)


def best_first(candidates: Iterable[Candidate]) -> list[Candidate]:
    """``candidates`` sorted by score, best first (stable: ties keep their order)."""
    return sorted(candidates, key=lambda c: -c.score)
