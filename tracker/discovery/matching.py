"""Candidates against tracked masks, and exclusive assignment (no two objects share a candidate)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..masks import mask_box, mask_iou
from ..types import FrameResult
from .protocols import Detection


def covered(detection: Detection, mask: np.ndarray) -> float:
    """The fraction of ``detection``'s mask inside ``mask``."""
    area = int(detection.mask.sum())
    return float((detection.mask & mask).sum()) / area if area else 0.0


def match_tracked(
    detections: Sequence[Detection], result: FrameResult, *, iou: float, cover: float
) -> tuple[dict[int, tuple[int, float]], list[int]]:
    """Which detections are objects already tracked on ``result``'s frame.

    A detection matches a tracked (non-empty) mask when their IoU reaches ``iou`` or the mask
    covers ``cover`` of the detection (a part of a tracked object is not a new one). Returns
    ``({object_id: (detection index, IoU)}`` for each object's best-IoU match, and the indices of
    the detections that match nothing, in input order.
    """
    tracked = [
        (oid, mask, mask_box(mask))
        for oid, mask in zip(result.object_ids, result.masks, strict=True)
        if mask.any()
    ]
    best: dict[int, tuple[int, float]] = {}
    unmatched = []
    for index, detection in enumerate(detections):
        hit = False
        for oid, mask, box in tracked:
            overlap = mask_iou(detection.mask, mask, empty=0.0, box_a=detection.box, box_b=box)
            if overlap >= iou or (overlap > 0 and covered(detection, mask) >= cover):
                hit = True
                if overlap > best.get(oid, (-1, -1.0))[1]:
                    best[oid] = (index, overlap)
        if not hit:
            unmatched.append(index)
    return best, unmatched


def assign_exclusive(scores: dict[tuple[int, int], float], *, minimum: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one assignment by score: ``{(row, column): score}`` → ``[(row, column, score)]``.

    Pairs are taken best first; a row or a column used once is never used again, so two objects
    can never both take one candidate (nor swap: each takes its own best that is still free).
    Pairs below ``minimum`` are never taken. Ties go to the smaller ``(row, column)``.
    """
    taken_rows: set[int] = set()
    taken_columns: set[int] = set()
    pairs = []
    for (row, column), score in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
        if score < minimum or row in taken_rows or column in taken_columns:
            continue
        taken_rows.add(row)
        taken_columns.add(column)
        pairs.append((row, column, score))
    return pairs
