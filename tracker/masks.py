"""Mask geometry, in one place: tight box, centroid, area, IoU, nearest-neighbour resizing, RLE.

Conventions (as :mod:`tracker.types`):

* a mask is an ``H×W`` ``bool`` array (a stack of them is ``N×H×W``);
* a box is ``xyxy`` with pixel edges: ``x1`` is the last column + 1, so a lone pixel at column 3,
  row 5 has the box ``(3.0, 5.0, 4.0, 6.0)``;
* a centroid ``(cx, cy)`` is the mean *column index* and mean *row index* of the mask's pixels:
  that lone pixel's centroid is ``(3.0, 5.0)`` (add 0.5 for its geometric centre in pixel-edge
  coordinates);
* an empty mask has area 0 and neither box nor centroid (None);
* RLE is COCO's compressed run-length encoding, ``{"size": [h, w], "counts": bytes}`` as
  ``pycocotools.mask.encode`` makes it (``counts`` may be ``str`` once it has been through JSON).

Every statistic is computed from the mask's tight box, so small objects on big frames stay
cheap; :func:`stack_stats` finds the rows of every mask of a stack in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from .types import Box, Point

RLE = dict[str, Any]


@dataclass(frozen=True, slots=True)
class MaskStats:
    """Cheap statistics of one object's mask on one frame.

    ``area`` in pixels; ``box`` (``xyxy``, pixel edges) and ``centroid`` ``(cx, cy)`` (mean
    column / row index) are None when the mask is empty; ``score`` is SAM 2's presence
    probability in ``[0, 1]`` (1.0 where unknown).
    """

    area: int
    box: Box | None = None
    centroid: Point | None = None
    score: float = 1.0

    @property
    def visible(self) -> bool:
        return self.area > 0

    @classmethod
    def from_mask(cls, mask: np.ndarray, score: float = 1.0) -> MaskStats:
        """From an ``H×W`` mask (any dtype: nonzero is inside); see :func:`mask_stats`."""
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"expected an H×W mask, got shape {mask.shape}")
        return mask_stats(mask, score)


# ---------------------------------------------------------------------------------- geometry


def _rows_hit(masks: np.ndarray) -> np.ndarray:
    """Which rows of each mask hold a pixel: ``H`` bool for a mask, ``N×H`` for a stack."""
    return np.asarray(masks.any(axis=-1))


def _box(mask: np.ndarray, rows_hit: np.ndarray) -> tuple[int, int, int, int] | None:
    """Integer ``xyxy`` box of ``mask`` given ``rows_hit = mask.any(axis=1)``; None if empty."""
    ys = np.flatnonzero(rows_hit)
    if ys.size == 0:
        return None
    y0, y1 = int(ys[0]), int(ys[-1]) + 1
    xs = np.flatnonzero(mask[y0:y1].any(axis=0))  # only the band of rows the mask spans
    return int(xs[0]), y0, int(xs[-1]) + 1, y1


def _stats(mask: np.ndarray, rows_hit: np.ndarray, score: float) -> MaskStats:
    box = _box(mask, rows_hit)
    if box is None:
        return MaskStats(0, None, None, score)
    x0, y0, x1, y1 = box
    crop = mask[y0:y1, x0:x1]
    column_counts = np.count_nonzero(crop, axis=0)
    row_counts = np.count_nonzero(crop, axis=1)
    area = int(row_counts.sum())
    # Integer sums (exact in float64 below 2**53 pixels), divided once.
    cx = float(column_counts @ np.arange(x0, x1, dtype=np.float64)) / area
    cy = float(row_counts @ np.arange(y0, y1, dtype=np.float64)) / area
    return MaskStats(area, (float(x0), float(y0), float(x1), float(y1)), (cx, cy), score)


def mask_box(mask: np.ndarray) -> Box | None:
    """Tight ``xyxy`` box of an ``H×W`` bool mask (pixel edges: x1 = last column + 1), None if empty."""
    box = _box(mask, _rows_hit(mask))
    return None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def mask_centroid(mask: np.ndarray) -> Point | None:
    """``(cx, cy)``: mean column / row index of an ``H×W`` bool mask's pixels, None if empty."""
    return _stats(mask, _rows_hit(mask), 1.0).centroid


def mask_stats(mask: np.ndarray, score: float = 1.0) -> MaskStats:
    """Area, tight box and centroid of an ``H×W`` bool mask (see the module's conventions)."""
    return _stats(mask, _rows_hit(mask), float(score))


def stack_stats(masks: np.ndarray, scores: Sequence[float] | np.ndarray | None = None) -> list[MaskStats]:
    """:func:`mask_stats` of every mask of an ``N×H×W`` bool stack, with ``scores`` (default 1.0).

    The rows each mask touches are found for the whole stack in one vectorised pass; the rest
    of the work is confined to each mask's box.
    """
    if masks.ndim != 3:
        raise ValueError(f"expected an N×H×W stack of masks, got shape {masks.shape}")
    if scores is not None and len(scores) != masks.shape[0]:
        raise ValueError(f"{len(scores)} scores for {masks.shape[0]} masks")
    rows_hit = _rows_hit(masks)
    return [
        _stats(masks[i], rows_hit[i], 1.0 if scores is None else float(scores[i]))
        for i in range(masks.shape[0])
    ]


def mask_iou(
    a: np.ndarray | None,
    b: np.ndarray | None,
    *,
    empty: float,
    box_a: Box | None = None,
    box_b: Box | None = None,
) -> float:
    """Intersection over union of two ``H×W`` bool masks of the same size.

    Empty-mask rule: None counts as an empty mask. When **both** masks are empty they have no
    union and the answer is ``empty``, which every caller states: ``1.0`` where "absent in both"
    is agreement (the re-track stop rule, DAVIS's J), ``0.0`` where an empty mask matches
    nothing (overlap suppression). When exactly one is empty the IoU is ``0.0``.

    ``box_a`` / ``box_b`` are the masks' tight boxes when the caller already has them (None:
    computed here); only the boxes' intersection is compared, so masks that cannot touch cost
    almost nothing.
    """
    if box_a is None and a is not None:
        box_a = mask_box(a)
    if box_b is None and b is not None:
        box_b = mask_box(b)
    if box_a is None and box_b is None:
        return float(empty)
    if a is None or b is None or box_a is None or box_b is None:
        return 0.0
    x0, y0 = int(max(box_a[0], box_b[0])), int(max(box_a[1], box_b[1]))
    x1, y1 = int(min(box_a[2], box_b[2])), int(min(box_a[3], box_b[3]))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    inter = int(np.count_nonzero(a[y0:y1, x0:x1] & b[y0:y1, x0:x1]))
    union = int(np.count_nonzero(a)) + int(np.count_nonzero(b)) - inter
    return inter / union if union else float(empty)


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """An ``H×W`` bool mask resized to ``width×height`` by nearest neighbour (``height×width`` bool)."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
    return np.asarray(image.resize((int(width), int(height)), Image.Resampling.NEAREST)) > 127


# ---------------------------------------------------------------------------------- RLE


def encode_mask(mask: np.ndarray) -> RLE:
    """COCO compressed RLE of an ``H×W`` bool mask: ``{"size": [h, w], "counts": bytes}``."""
    if mask.ndim != 2:
        raise ValueError(f"expected an H×W mask, got shape {mask.shape}")
    fortran = np.asfortranarray(mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8))
    return mask_utils.encode(fortran)


def decode_rle(rle: RLE) -> np.ndarray:
    """``H×W`` bool mask of a COCO RLE (compressed ``counts`` as str or bytes)."""
    return mask_utils.decode(rle).astype(bool)


def rle_to_json(rle: RLE) -> dict[str, Any]:
    """A compressed RLE as JSON-ready values: ``{"size": [h, w], "counts": str}`` (ASCII counts)."""
    counts = rle["counts"]
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def mask_to_json(mask: np.ndarray) -> dict[str, Any]:
    """:func:`encode_mask` then :func:`rle_to_json`; :func:`decode_rle` reads it back."""
    return rle_to_json(encode_mask(mask))


__all__ = [
    "RLE",
    "MaskStats",
    "decode_rle",
    "encode_mask",
    "mask_box",
    "mask_centroid",
    "mask_iou",
    "mask_stats",
    "mask_to_json",
    "resize_mask",
    "rle_to_json",
    "stack_stats",
]
