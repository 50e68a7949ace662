"""How good are the masks: the DAVIS region (J), boundary (F) and J&F scores.

Scores a prediction against ground truth the way the DAVIS 2017 benchmark's own evaluation
(``davis2017-evaluation``, semi-supervised task) does, in numpy and Pillow only (no OpenCV,
scikit-image or scipy):

* **J** (region similarity) is the IoU of the predicted and true mask of one object on one frame;
  when both are empty it is 1 (``db_eval_iou``).
* **F** (boundary accuracy): both masks are reduced to 1-pixel boundaries with :func:`seg2bmap`
  (DAVIS's ``_seg2bmap``); a boundary pixel counts as matched when the other boundary passes
  within a disk of radius ``ceil(bound_th · image diagonal)`` pixels (``bound_th`` ≥ 1 is taken
  as a radius in pixels, rounded up). Precision and recall of the matches give
  ``F = 2PR / (P + R)``. Both boundaries empty → 1; exactly one empty → 0 (``f_measure``).
* Per object, over the evaluated frames: **mean**, **recall** (fraction of frames scoring more
  than 0.5) and **decay** (mean of the first quarter of the frames minus mean of the last
  quarter, DAVIS's four overlapping bins), for J and for F; ``J&F = (J mean + F mean) / 2``.
* ``skip_first_last=True`` (the default, as in DAVIS's semi-supervised task, where the first
  frame is the given prompt) drops the first and the last annotated frame of every sequence.
* Per sequence: the mean over its objects. Overall: the mean over every object of every
  sequence (not the mean of sequence means), as in DAVIS's global table.

Where this differs from ``davis2017-evaluation`` (identical results on DAVIS itself):

* the objects of a sequence are the ids found anywhere in its ground truth (DAVIS takes
  ``1..max`` of the first frame; on DAVIS every object is in the first frame);
* a predicted frame that is missing is scored as empty masks (DAVIS stops), prediction ids that
  are not in the ground truth are ignored with a warning (DAVIS stops);
* decay bins use integer indices (DAVIS casts them to ``uint8``, which wraps past 256 frames).

Inputs (``pred`` and ``gt`` alike), object ids being pixel values, 0 background, and 255 in the
ground truth treated as background (DAVIS's void label; see ``void_label``):

* a folder of indexed PNGs (``00000.png``, …: one sequence), or a folder of such folders (one
  per sequence, matched by name), or a ``.zip`` of either, or a tool export folder / zip with a
  ``masks/`` folder inside. Frame numbers are the trailing digits of the file names, so
  prediction and truth are paired by name, not by position. PNGs are read with Pillow: palette
  (``P``), grayscale (``L``, ``I;16``, ``I``) or 1-bit images, or colour images drawn with the
  DAVIS palette (any other colour is refused);
* in memory: ``{frame: label_map}`` or ``{frame: {object_id: mask}}`` (one sequence), the same
  keyed by sequence name (``{name: {frame: ...}}``), or a ``ResultStore`` (anything with
  ``frames()``, ``object_ids`` and ``mask(frame, object_id)``).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from .errors import InputError
from .masks import mask_box, mask_iou

log = logging.getLogger(__name__)

DEFAULT_BOUND_TH = 0.008
"""DAVIS's boundary tolerance: a fraction of the image diagonal (≈ 8 px at 854×480)."""

DAVIS_VOID_LABEL = 255

# One frame of one sequence, before it is split into objects: an H×W label map, or
# {object_id: H×W mask}.
FrameData = Any
FrameLoader = Callable[[], FrameData]

_PNG_MODES = {"P", "L", "1", "I", "I;16", "I;16L", "I;16B"}
_FRAME_NUMBER = re.compile(r"(\d+)$")


# --------------------------------------------------------------------------------------------
# Per-frame measures
# --------------------------------------------------------------------------------------------


def region_similarity(gt: np.ndarray, pred: np.ndarray) -> float:
    """J: IoU of two ``H×W`` masks (any dtype, nonzero = inside); 1.0 when both are empty."""
    gt, pred = _as_bool_pair(gt, pred)
    return mask_iou(gt, pred, empty=1.0)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """The 1-pixel boundary map of an ``H×W`` mask, exactly as DAVIS's ``_seg2bmap``.

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour
    (the boundary sits half a pixel towards the origin); in the last row only the right
    neighbour counts, in the last column only the lower one, and the bottom-right pixel never
    is. A mask filling the whole image therefore has an empty boundary. Returns ``H×W`` bool.
    """
    seg = np.asarray(mask).astype(bool)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap expects an H×W mask, got shape {seg.shape}")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def boundary_radius(shape: tuple[int, int], bound_th: float = DEFAULT_BOUND_TH) -> int:
    """The matching radius in pixels: ``ceil(bound_th · diagonal)``, or ``ceil(bound_th)`` if ≥ 1."""
    if bound_th <= 0:
        raise InputError(f"The boundary tolerance must be positive, got {bound_th}.")
    if bound_th >= 1:
        return int(math.ceil(bound_th))
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of an ``H×W`` bool mask by a disk of ``radius`` pixels.

    The disk is scikit-image's ``disk(radius)``: offsets ``(dx, dy)`` with
    ``dx² + dy² ≤ radius²``; pixels outside the image count as background (as ``cv2.dilate``).
    Each disk row is a horizontal segment, so the dilation is a few horizontal running-window
    ORs (prefix sums) shifted vertically: about ``2·radius`` passes over the image.
    """
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    height, width = mask.shape
    prefix = np.zeros((height, width + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, out=prefix[:, 1:])
    columns = np.arange(width)
    horizontal: dict[int, np.ndarray] = {}
    out = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        half = math.isqrt(radius * radius - dy * dy)
        if half not in horizontal:
            lo = np.clip(columns - half, 0, width)
            hi = np.clip(columns + half + 1, 0, width)
            horizontal[half] = (prefix[:, hi] - prefix[:, lo]) > 0
        rows = horizontal[half]
        if dy >= height or -dy >= height:
            continue
        # out[y] |= rows[y + dy]
        if dy >= 0:
            out[: height - dy] |= rows[dy:]
        else:
            out[-dy:] |= rows[: height + dy]
    return out


def boundary_f_measure(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> float:
    """F: boundary precision/recall of ``pred`` against ``gt`` (two ``H×W`` masks), as DAVIS.

    Both boundaries empty → 1.0; exactly one empty → 0.0. The tolerance radius comes from the
    full image size (:func:`boundary_radius`); the work is done on the crop around both masks,
    which gives the same result.
    """
    gt, pred = _as_bool_pair(gt, pred)
    return _score_pair(gt, pred, boundary_radius(gt.shape, bound_th))[1]


def mean_recall_decay(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """DAVIS's ``db_statistics``: mean, recall (fraction > 0.5) and decay of per-frame scores.

    Decay splits the frames into 4 overlapping bins at ``round(linspace(1, n, 5)) - 1`` and
    returns ``mean(first bin) - mean(last bin)``. NaN for an empty list.
    """
    scores = np.asarray(values, dtype=np.float64)
    if scores.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(scores))
    recall = float(np.mean(scores > 0.5))
    edges = (np.round(np.linspace(1, scores.size, 5) + 1e-10) - 1).astype(np.int64)
    first = scores[edges[0] : edges[1] + 1]
    last = scores[edges[3] : edges[4] + 1]
    return mean, recall, float(np.mean(first) - np.mean(last))


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Scores:
    """The six DAVIS numbers; ``jf_mean`` is ``(j_mean + f_mean) / 2``."""

    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2

    def score_dict(self) -> dict[str, float | None]:
        names = ("jf_mean", "j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay")
        return {name: _round(getattr(self, name)) for name in names}

    @staticmethod
    def average(items: Sequence[Scores]) -> dict[str, float]:
        """Field-wise mean of several scores (keyword arguments for a :class:`Scores`)."""
        names = ("j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay")
        if not items:
            return {name: math.nan for name in names}
        return {name: float(np.mean([getattr(item, name) for item in items])) for name in names}


@dataclass(frozen=True, kw_only=True)
class ObjectScores(Scores):
    """One object of one sequence: its scores and the per-frame J and F behind them."""

    sequence: str
    object_id: int
    frames: tuple[int, ...]  # evaluated frames, ascending
    j: tuple[float, ...]  # per evaluated frame
    f: tuple[float, ...]

    @classmethod
    def from_frames(
        cls, sequence: str, object_id: int, frames: Sequence[int], j: Sequence[float], f: Sequence[float]
    ) -> ObjectScores:
        j_mean, j_recall, j_decay = mean_recall_decay(j)
        f_mean, f_recall, f_decay = mean_recall_decay(f)
        return cls(
            sequence=sequence,
            object_id=int(object_id),
            frames=tuple(int(x) for x in frames),
            j=tuple(float(x) for x in j),
            f=tuple(float(x) for x in f),
            j_mean=j_mean,
            j_recall=j_recall,
            j_decay=j_decay,
            f_mean=f_mean,
            f_recall=f_recall,
            f_decay=f_decay,
        )

    def to_dict(self, per_frame: bool = False) -> dict[str, Any]:
        row: dict[str, Any] = {
            "sequence": self.sequence,
            "object_id": self.object_id,
            "num_frames": len(self.frames),
            **self.score_dict(),
        }
        if per_frame:
            row["frames"] = list(self.frames)
            row["j"] = [_round(x) for x in self.j]
            row["f"] = [_round(x) for x in self.f]
        return row


@dataclass(frozen=True, kw_only=True)
class SequenceScores(Scores):
    """One sequence: the mean over its objects, and which frames had no prediction at all."""

    sequence: str
    object_ids: tuple[int, ...]
    num_frames: int  # evaluated frames
    missing_frames: tuple[int, ...] = ()  # evaluated frames with no predicted file (scored empty)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "object_ids": list(self.object_ids),
            "num_frames": self.num_frames,
            "missing_frames": list(self.missing_frames),
            **self.score_dict(),
        }


@dataclass(frozen=True, kw_only=True)
class OverallScores(Scores):
    """Every object of every sequence, averaged object by object (DAVIS's global row)."""

    num_sequences: int
    num_objects: int

    def to_dict(self) -> dict[str, Any]:
        return {"num_sequences": self.num_sequences, "num_objects": self.num_objects, **self.score_dict()}


@dataclass(frozen=True)
class EvalReport:
    """What :func:`evaluate` found: per object, per sequence and overall, plus the settings."""

    objects: list[ObjectScores]
    sequences: list[SequenceScores]
    overall: OverallScores
    bound_th: float = DEFAULT_BOUND_TH
    skip_first_last: bool = True
    warnings: list[str] = field(default_factory=list)

    def to_dict(self, per_frame: bool = False) -> dict[str, Any]:
        return {
            "metric": "DAVIS J&F (semi-supervised)",
            "bound_th": self.bound_th,
            "skip_first_last": self.skip_first_last,
            "overall": self.overall.to_dict(),
            "sequences": [s.to_dict() for s in self.sequences],
            "objects": [o.to_dict(per_frame) for o in self.objects],
            "warnings": list(self.warnings),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, per_frame: bool = False) -> str:
        """The report as JSON text; also written to ``path`` (atomically) when given."""
        text = json.dumps(self.to_dict(per_frame), indent=2)
        if path is not None:
            _atomic_write_text(Path(path), text + "\n")
        return text

    def to_table(self) -> str:
        """Aligned plain-text tables: overall, per sequence, per object (scores as fractions)."""
        names = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")

        def numbers(scores: Scores) -> list[str]:
            values = (
                scores.jf_mean,
                scores.j_mean,
                scores.j_recall,
                scores.j_decay,
                scores.f_mean,
                scores.f_recall,
                scores.f_decay,
            )
            return [f"{v:.3f}" for v in values]

        overall = _format_table(
            ("Sequences", "Objects", *names),
            [[str(self.overall.num_sequences), str(self.overall.num_objects), *numbers(self.overall)]],
        )
        sequences = _format_table(
            ("Sequence", "Objects", "Frames", *names),
            [[s.sequence, str(len(s.object_ids)), str(s.num_frames), *numbers(s)] for s in self.sequences],
        )
        objects = _format_table(
            ("Sequence", "Object", "Frames", *names),
            [[o.sequence, str(o.object_id), str(len(o.frames)), *numbers(o)] for o in self.objects],
        )
        skip = "first and last frames skipped" if self.skip_first_last else "all frames"
        return (
            f"Overall (bound_th={self.bound_th:g}, {skip})\n{overall}\n\n"
            f"Per sequence\n{sequences}\n\nPer object\n{objects}\n"
        )


def _format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        # first column (a name) left-aligned, numbers right-aligned
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(
    pred: Any,
    gt: Any,
    *,
    bound_th: float = DEFAULT_BOUND_TH,
    skip_first_last: bool = True,
    sequences: Iterable[str] | None = None,
    void_label: int | None = DAVIS_VOID_LABEL,
) -> EvalReport:
    """Score ``pred`` against ``gt`` with DAVIS's J, F and J&F (see the module docstring).

    ``pred`` and ``gt`` are each a path (PNG folder, folder of sequence folders, zip, export
    folder with ``masks/``), an in-memory mapping or a ``ResultStore``. ``sequences`` limits the
    evaluation to those ground-truth sequences. ``void_label`` pixels in the ground truth count as
    background (None keeps them as an object id).

    Raises :class:`InputError` for unreadable or mismatched inputs: a missing path, no PNGs, a
    colour PNG outside the DAVIS palette, prediction and truth frames of different sizes, no
    sequence in common, a sequence with too few annotated frames, or ground truth without any
    object. Lesser problems (missing predicted frames or sequences, predicted ids the truth does
    not have) are logged and listed in ``EvalReport.warnings``.
    """
    problems: list[str] = []
    with ExitStack() as stack:
        gt_sequences = _open_source(gt, stack, "ground truth")
        pred_sequences = _open_source(pred, stack, "prediction")
        pairs = _pair_sequences(pred_sequences, gt_sequences, problems)
        if sequences is not None:
            wanted = list(sequences)
            unknown = [name for name in wanted if name not in pairs]
            if unknown:
                raise InputError(
                    f"Sequence(s) {', '.join(unknown)} are not in the ground truth "
                    f"(it has {', '.join(sorted(pairs))})."
                )
            pairs = {name: pairs[name] for name in wanted}
        object_rows: list[ObjectScores] = []
        sequence_rows: list[SequenceScores] = []
        for name in sorted(pairs):
            gt_frames, pred_frames = pairs[name]
            rows, missing = _evaluate_sequence(
                name, gt_frames, pred_frames, bound_th, skip_first_last, void_label, problems
            )
            object_rows.extend(rows)
            sequence_rows.append(
                SequenceScores(
                    sequence=name,
                    object_ids=tuple(r.object_id for r in rows),
                    num_frames=len(rows[0].frames),
                    missing_frames=tuple(missing),
                    **Scores.average(rows),
                )
            )
    overall = OverallScores(
        num_sequences=len(sequence_rows), num_objects=len(object_rows), **Scores.average(object_rows)
    )
    log.info(
        "J&F %.4f (J %.4f, F %.4f) over %d objects in %d sequences",
        overall.jf_mean,
        overall.j_mean,
        overall.f_mean,
        len(object_rows),
        len(sequence_rows),
    )
    return EvalReport(object_rows, sequence_rows, overall, bound_th, skip_first_last, problems)


def evaluate_sequence(
    pred: Any,
    gt: Any,
    *,
    name: str = "sequence",
    bound_th: float = DEFAULT_BOUND_TH,
    skip_first_last: bool = True,
    void_label: int | None = DAVIS_VOID_LABEL,
) -> list[ObjectScores]:
    """Per-object scores of one sequence given in memory.

    ``pred`` and ``gt`` are ``{frame: label_map}`` or ``{frame: {object_id: mask}}`` (or a
    ``ResultStore`` for ``pred``); frames missing from ``pred`` are empty.
    """
    with ExitStack() as stack:
        pred_frames = _single(_open_source(pred, stack, "prediction"), "prediction")
        gt_frames = _single(_open_source(gt, stack, "ground truth"), "ground truth")
        rows, _ = _evaluate_sequence(name, gt_frames, pred_frames, bound_th, skip_first_last, void_label, [])
    return rows


def _single(sequences: dict[str, dict[int, FrameLoader]], role: str) -> dict[int, FrameLoader]:
    if len(sequences) != 1:
        raise InputError(f"Expected one sequence for the {role}, got {len(sequences)}.")
    return next(iter(sequences.values()))


def _evaluate_sequence(
    name: str,
    gt_frames: dict[int, FrameLoader],
    pred_frames: dict[int, FrameLoader] | None,
    bound_th: float,
    skip_first_last: bool,
    void_label: int | None,
    problems: list[str],
) -> tuple[list[ObjectScores], list[int]]:
    frame_ids = sorted(gt_frames)
    evaluated = frame_ids[1:-1] if skip_first_last else frame_ids
    if not evaluated:
        raise InputError(
            f"Sequence {name!r} has {len(frame_ids)} annotated frame(s): nothing is left to score "
            "after skipping the first and last; pass skip_first_last=False to score every frame."
        )
    evaluated_set = set(evaluated)
    pred_frames = pred_frames or {}
    gt_ids: set[int] = set()
    pred_ids: set[int] = set()
    values: dict[int, dict[int, tuple[float, float]]] = {}
    missing: list[int] = []
    for frame in frame_ids:
        gt_masks, gt_shape = _split_objects(gt_frames[frame](), void_label, f"{name} frame {frame}")
        gt_ids.update(gt_masks)
        if frame not in evaluated_set:
            continue
        if frame in pred_frames:
            pred_masks, pred_shape = _split_objects(pred_frames[frame](), None, f"{name} frame {frame}")
        else:
            missing.append(frame)
            pred_masks, pred_shape = {}, None
        pred_ids.update(pred_masks)
        if gt_shape is not None and pred_shape is not None and gt_shape != pred_shape:
            raise InputError(
                f"Sequence {name!r} frame {frame}: the prediction is {pred_shape[1]}×{pred_shape[0]} "
                f"but the ground truth is {gt_shape[1]}×{gt_shape[0]}; export the masks at the "
                "annotation size."
            )
        shape = gt_shape or pred_shape
        frame_values: dict[int, tuple[float, float]] = {}
        if shape is not None:
            radius = boundary_radius(shape, bound_th)
            for object_id in set(gt_masks) | set(pred_masks):
                frame_values[object_id] = _score_pair(
                    gt_masks.get(object_id), pred_masks.get(object_id), radius
                )
        values[frame] = frame_values
    if not gt_ids:
        raise InputError(f"The ground truth of sequence {name!r} has no object (every pixel is 0).")
    if missing:
        message = f"{name}: {len(missing)} frame(s) have no prediction and count as empty masks"
        log.warning(message)
        problems.append(message)
    extra = sorted(pred_ids - gt_ids)
    if extra:
        message = f"{name}: predicted object id(s) {extra} are not in the ground truth and are ignored"
        log.warning(message)
        problems.append(message)
    rows = []
    for object_id in sorted(gt_ids):
        # An object neither predicted nor annotated on a frame is a correct "absent": J = F = 1.
        pairs = [values[f].get(object_id, (1.0, 1.0)) for f in evaluated]
        rows.append(
            ObjectScores.from_frames(name, object_id, evaluated, [p[0] for p in pairs], [p[1] for p in pairs])
        )
    return rows, missing


def _score_pair(gt: np.ndarray | None, pred: np.ndarray | None, radius: int) -> tuple[float, float]:
    """(J, F) of one object on one frame; either mask may be None (empty)."""
    present = [
        (mask, box)
        for mask in (gt, pred)
        if mask is not None
        for box in (mask_box(mask),)
        if box is not None
    ]
    if not present:
        return 1.0, 1.0
    # Crop to both masks plus a 1-pixel margin: seg2bmap on the crop equals seg2bmap on the image
    # (the margin rows/columns are background, so the special last-row/column rules agree), and
    # every boundary pixel lies inside the crop, so matching within it is exact.
    height, width = present[0][0].shape
    x0 = max(int(min(box[0] for _, box in present)) - 1, 0)
    y0 = max(int(min(box[1] for _, box in present)) - 1, 0)
    x1 = min(int(max(box[2] for _, box in present)) + 1, width)
    y1 = min(int(max(box[3] for _, box in present)) + 1, height)
    empty = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    g = gt[y0:y1, x0:x1] if gt is not None else empty
    p = pred[y0:y1, x0:x1] if pred is not None else empty
    j = mask_iou(g, p, empty=1.0)

    gt_boundary = seg2bmap(g)
    pred_boundary = seg2bmap(p)
    n_gt = int(np.count_nonzero(gt_boundary))
    n_pred = int(np.count_nonzero(pred_boundary))
    if n_gt == 0 and n_pred == 0:
        return j, 1.0
    if n_gt == 0 or n_pred == 0:
        return j, 0.0
    precision = np.count_nonzero(pred_boundary & dilate_disk(gt_boundary, radius)) / n_pred
    recall = np.count_nonzero(gt_boundary & dilate_disk(pred_boundary, radius)) / n_gt
    if precision + recall == 0:
        return j, 0.0
    return j, float(2 * precision * recall / (precision + recall))


def _as_bool_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt).astype(bool, copy=False)
    pred = np.asarray(pred).astype(bool, copy=False)
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise InputError(f"Masks must be two H×W arrays of the same size, got {gt.shape} and {pred.shape}.")
    return gt, pred


def _split_objects(
    data: FrameData, void_label: int | None, where: str
) -> tuple[dict[int, np.ndarray], tuple[int, int] | None]:
    """One frame as ``{object_id: H×W bool}`` (non-empty masks only) and its ``(H, W)``."""
    if isinstance(data, Mapping):
        masks: dict[int, np.ndarray] = {}
        shape: tuple[int, int] | None = None
        for object_id, mask in data.items():
            if mask is None:
                continue
            mask = np.asarray(mask).astype(bool, copy=False)
            if mask.ndim != 2:
                raise InputError(f"{where}: the mask of object {object_id} is not H×W (shape {mask.shape}).")
            if shape is not None and mask.shape != shape:
                raise InputError(f"{where}: object masks of different sizes ({shape} and {mask.shape}).")
            shape = mask.shape
            if mask.any():
                masks[int(object_id)] = mask
        return masks, shape
    labels = np.asarray(data)
    if labels.ndim == 3 and labels.shape[2] == 1:
        labels = labels[:, :, 0]
    if labels.ndim != 2:
        raise InputError(f"{where}: expected an H×W label map, got shape {labels.shape}.")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if void_label is not None:
        labels = np.where(labels == void_label, 0, labels)
    if labels.dtype in (np.uint8, np.uint16):
        ids = np.flatnonzero(np.bincount(labels.ravel()))
    else:
        ids = np.unique(labels)
    return {int(i): labels == i for i in ids if i > 0}, labels.shape


# --------------------------------------------------------------------------------------------
# Reading inputs
# --------------------------------------------------------------------------------------------


def _open_source(source: Any, stack: ExitStack, role: str) -> dict[str, dict[int, FrameLoader]]:
    """``{sequence: {frame: loader}}`` for any accepted input (see the module docstring)."""
    if isinstance(source, (str, os.PathLike)):
        return _open_path(Path(source), stack, role)
    if hasattr(source, "frames") and hasattr(source, "mask"):
        return {"sequence": _store_frames(source)}
    if isinstance(source, Mapping):
        if not source:
            raise InputError(f"The {role} is empty.")
        keys = list(source)
        if all(isinstance(k, str) for k in keys):
            return {name: _mapping_frames(frames, role) for name, frames in source.items()}
        return {"sequence": _mapping_frames(source, role)}
    raise InputError(
        f"Cannot read the {role} from a {type(source).__name__}: give a folder, a zip, "
        "a {frame: masks} mapping or a ResultStore."
    )


def _mapping_frames(frames: Any, role: str) -> dict[int, FrameLoader]:
    if not isinstance(frames, Mapping):
        raise InputError(f"The {role} must map frame numbers to masks, got a {type(frames).__name__}.")
    out: dict[int, FrameLoader] = {}
    for frame, data in frames.items():
        try:
            index = int(frame)
        except (TypeError, ValueError):
            raise InputError(f"The {role} has a frame key {frame!r} that is not a frame number.") from None
        out[index] = functools.partial(_same, data)
    return out


def _same(data: FrameData) -> FrameData:
    return data


def _read_zipped_png(archive: zipfile.ZipFile, name: str, where: str) -> np.ndarray:
    return _read_png(io.BytesIO(archive.read(name)), where)


def _store_frames(store: Any) -> dict[int, FrameLoader]:
    ids = store.object_ids
    object_ids = list(ids() if callable(ids) else ids)

    def load(frame: int) -> dict[int, np.ndarray | None]:
        masks: dict[int, np.ndarray | None] = {}
        for object_id in object_ids:
            try:
                masks[object_id] = store.mask(frame, object_id)
            except KeyError:  # no mask for this object on this frame: absent
                masks[object_id] = None
        return masks

    return {int(frame): functools.partial(load, frame) for frame in store.frames()}


def _open_path(path: Path, stack: ExitStack, role: str) -> dict[str, dict[int, FrameLoader]]:
    if not path.exists():
        raise InputError(f"The {role} {path} does not exist.")
    files: dict[PurePosixPath, FrameLoader]
    if path.is_dir():
        files = {
            PurePosixPath(p.relative_to(path).as_posix()): functools.partial(_read_png, p, str(p))
            for p in path.rglob("*")
            if p.suffix.lower() == ".png" and p.is_file()
        }
        root_name = path.name
    elif zipfile.is_zipfile(path):
        archive = stack.enter_context(zipfile.ZipFile(path))
        files = {
            PurePosixPath(name): functools.partial(_read_zipped_png, archive, name, f"{path}:{name}")
            for name in archive.namelist()
            if name.lower().endswith(".png") and not name.endswith("/")
        }
        root_name = path.stem
    else:
        raise InputError(f"The {role} {path} is neither a folder nor a zip file.")
    files = {
        p: loader
        for p, loader in files.items()
        if not any(part.startswith(".") or part == "__MACOSX" for part in p.parts)
    }
    if not files:
        raise InputError(f"The {role} {path} holds no PNG masks.")
    return _group_sequences(files, root_name, role, path)


def _group_sequences(
    files: dict[PurePosixPath, FrameLoader], root_name: str, role: str, where: Path
) -> dict[str, dict[int, FrameLoader]]:
    """Find the layout: one sequence of PNGs, or one folder per sequence (see module docstring)."""
    name = root_name
    while True:
        tops = {p.parts[0] for p in files if len(p.parts) > 1}
        at_root = any(len(p.parts) == 1 for p in files)
        if at_root:
            break
        if len(tops) == 1:  # a single wrapping folder (zip of a folder, export/masks/...)
            top = tops.pop()
            if top != "masks":
                name = top
            files = {PurePosixPath(*p.parts[1:]): loader for p, loader in files.items()}
            continue
        if "masks" in tops:  # an export folder: masks/ next to other outputs
            files = {
                PurePosixPath(*p.parts[1:]): loader for p, loader in files.items() if p.parts[0] == "masks"
            }
            continue
        break
    groups: dict[str, dict[PurePosixPath, FrameLoader]] = {}
    ignored = 0
    if any(len(p.parts) == 1 for p in files):
        groups[name] = {p: loader for p, loader in files.items() if len(p.parts) == 1}
        ignored = len(files) - len(groups[name])
    else:
        for p, loader in files.items():
            if len(p.parts) == 2:
                groups.setdefault(p.parts[0], {})[p] = loader
            else:
                ignored += 1
    if ignored:
        log.warning("%s: ignored %d PNG(s) outside the sequence folders", where, ignored)
    if not groups:
        raise InputError(
            f"The {role} {where} has no folder of PNG masks: expected 00000.png, … or one folder of "
            "them per sequence."
        )
    sequences: dict[str, dict[int, FrameLoader]] = {}
    for sequence, members in groups.items():
        frames: dict[int, FrameLoader] = {}
        for p, loader in members.items():
            match = _FRAME_NUMBER.search(p.stem)
            if match is None:
                raise InputError(f"{where}/{p}: the file name has no frame number (expected e.g. 00012.png).")
            frame = int(match.group(1))
            if frame in frames:
                raise InputError(f"{where}/{sequence}: two PNGs are numbered as frame {frame}.")
            frames[frame] = loader
        sequences[sequence] = frames
    return sequences


def _read_png(source: Any, where: str) -> np.ndarray:
    """An indexed / grayscale PNG as an ``H×W`` integer array of object ids."""
    try:
        with Image.open(source) as image:
            if image.mode in ("RGB", "RGBA"):
                return _labels_from_colours(np.asarray(image.convert("RGB")), where)
            if image.mode not in _PNG_MODES:
                raise InputError(
                    f"{where} is a {image.mode} image; masks must be palette or grayscale PNGs "
                    "whose pixel values are object ids (as DAVIS annotations)."
                )
            array = np.array(image)
    except InputError:
        raise
    except (OSError, ValueError) as error:
        raise InputError(f"{where} is not a readable PNG ({error}).") from None
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array


def _labels_from_colours(rgb: np.ndarray, where: str) -> np.ndarray:
    """Object ids of a colour PNG drawn with the DAVIS palette (other tools save masks that way)."""
    from .export import davis_palette

    palette = np.asarray(davis_palette(), dtype=np.int64).reshape(256, 3)
    lookup = {int(r) << 16 | int(g) << 8 | int(b): index for index, (r, g, b) in enumerate(palette)}
    codes = rgb[..., 0].astype(np.int64) << 16 | rgb[..., 1].astype(np.int64) << 8 | rgb[..., 2]
    unique, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(code) for code in unique if int(code) not in lookup]
    if unknown:
        raise InputError(
            f"{where} is a colour PNG with colours outside the DAVIS palette (e.g. #{unknown[0]:06x}); "
            "masks must be palette or grayscale PNGs whose pixel values are object ids."
        )
    ids = np.array([lookup[int(code)] for code in unique], dtype=np.uint8)
    return ids[inverse.reshape(codes.shape)]


def _pair_sequences(
    pred: dict[str, dict[int, FrameLoader]],
    gt: dict[str, dict[int, FrameLoader]],
    problems: list[str],
) -> dict[str, tuple[dict[int, FrameLoader], dict[int, FrameLoader] | None]]:
    """Ground-truth sequence → (its frames, the predicted frames or None)."""
    if len(gt) == 1 and len(pred) == 1:  # one against one: names need not agree
        ((name, gt_frames),) = gt.items()
        return {name: (gt_frames, next(iter(pred.values())))}
    common = set(gt) & set(pred)
    if not common:
        raise InputError(
            f"No sequence is in both the prediction ({', '.join(sorted(pred)) or 'none'}) and the "
            f"ground truth ({', '.join(sorted(gt))}); sequence folders are matched by name."
        )
    for name in sorted(set(gt) - common):
        message = f"{name}: no predicted sequence; every frame counts as empty"
        log.warning(message)
        problems.append(message)
    extra = sorted(set(pred) - set(gt))
    if extra:
        message = f"predicted sequence(s) {', '.join(extra)} have no ground truth and are ignored"
        log.warning(message)
        problems.append(message)
    return {name: (frames, pred.get(name)) for name, frames in gt.items()}


def _atomic_write_text(path: Path, text: str) -> None:
    from .results import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
