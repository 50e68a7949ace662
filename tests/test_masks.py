"""tracker.masks: box, centroid, stats, IoU, nearest-neighbour resize and RLE, row by row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tracker.masks import (
    MaskStats,
    decode_rle,
    encode_mask,
    mask_box,
    mask_centroid,
    mask_iou,
    mask_stats,
    mask_to_json,
    resize_mask,
    rle_to_json,
    stack_stats,
)
from tracker.types import FrameResult

H, W = 6, 8


def mask_of(*pixels: tuple[int, int], shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """A bool mask with the given ``(x, y)`` pixels set."""
    mask = np.zeros(shape, bool)
    for x, y in pixels:
        mask[y, x] = True
    return mask


def rect(x0: int, y0: int, x1: int, y1: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """Pixels ``x0 <= x < x1``, ``y0 <= y < y1``."""
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


EMPTY = np.zeros((H, W), bool)
FULL = np.ones((H, W), bool)

GEOMETRY = [
    pytest.param(EMPTY, 0, None, None, id="empty"),
    pytest.param(mask_of((3, 5)), 1, (3.0, 5.0, 4.0, 6.0), (3.0, 5.0), id="one-pixel"),
    pytest.param(mask_of((0, 0)), 1, (0.0, 0.0, 1.0, 1.0), (0.0, 0.0), id="corner"),
    pytest.param(rect(0, 0, 2, 2), 4, (0.0, 0.0, 2.0, 2.0), (0.5, 0.5), id="square"),
    pytest.param(FULL, H * W, (0.0, 0.0, float(W), float(H)), ((W - 1) / 2, (H - 1) / 2), id="full"),
    pytest.param(mask_of((1, 1), (6, 4)), 2, (1.0, 1.0, 7.0, 5.0), (3.5, 2.5), id="two-apart"),
    pytest.param(
        mask_of((2, 0), (2, 1), (2, 2), (3, 2)), 4, (2.0, 0.0, 4.0, 3.0), (2.25, 1.25), id="l-shape"
    ),
    pytest.param(rect(7, 0, 8, 6), 6, (7.0, 0.0, 8.0, 6.0), (7.0, 2.5), id="last-column"),
]


@pytest.mark.parametrize(("mask", "area", "box", "centroid"), GEOMETRY)
def test_geometry(mask, area, box, centroid):
    assert mask_box(mask) == box
    assert mask_centroid(mask) == centroid
    assert mask_stats(mask, 0.5) == MaskStats(area, box, centroid, 0.5)
    assert MaskStats.from_mask(mask.astype(np.uint8), 0.5) == MaskStats(area, box, centroid, 0.5)
    assert mask_stats(mask).visible == (area > 0)


def test_stack_stats_matches_one_by_one():
    stack = np.stack([row.values[0] for row in GEOMETRY])
    scores = np.linspace(0.1, 0.9, len(GEOMETRY), dtype=np.float32)
    expected = [mask_stats(mask, float(score)) for mask, score in zip(stack, scores, strict=True)]
    assert stack_stats(stack, scores) == expected
    assert stack_stats(np.zeros((0, H, W), bool)) == []


@pytest.mark.parametrize(
    ("masks", "scores", "error"),
    [
        (np.zeros((H, W), bool), None, "N×H×W"),
        (np.zeros((2, H, W), bool), [1.0], "2 masks"),
    ],
)
def test_stack_stats_rejects(masks, scores, error):
    with pytest.raises(ValueError, match=error):
        stack_stats(masks, scores)


def test_from_mask_rejects_a_stack():
    with pytest.raises(ValueError, match="H×W"):
        MaskStats.from_mask(np.zeros((2, H, W), bool))


def test_centroid_is_exact_on_a_big_random_mask():
    rng = np.random.default_rng(3)
    mask = rng.random((480, 640)) > 0.7
    rows, cols = np.nonzero(mask)
    assert mask_centroid(mask) == pytest.approx((cols.mean(), rows.mean()), rel=1e-12)


IOU = [
    # the empty-mask rule: both empty → ``empty``; exactly one empty → 0
    pytest.param(EMPTY, EMPTY, 1.0, 1.0, id="both-empty-agree"),
    pytest.param(EMPTY, EMPTY, 0.0, 0.0, id="both-empty-match-nothing"),
    pytest.param(None, EMPTY, 1.0, 1.0, id="none-is-empty"),
    pytest.param(None, None, 1.0, 1.0, id="both-none"),
    pytest.param(None, mask_of((0, 0)), 1.0, 0.0, id="none-vs-pixel"),
    pytest.param(EMPTY, mask_of((0, 0)), 1.0, 0.0, id="empty-vs-pixel"),
    pytest.param(mask_of((0, 0)), EMPTY, 0.0, 0.0, id="pixel-vs-empty"),
    pytest.param(mask_of((0, 0)), mask_of((0, 0)), 0.0, 1.0, id="same-pixel"),
    pytest.param(rect(0, 0, 2, 2), rect(4, 4, 6, 6), 1.0, 0.0, id="disjoint-boxes"),
    pytest.param(mask_of((0, 0), (1, 1)), mask_of((1, 0), (0, 1)), 1.0, 0.0, id="boxes-touch-pixels-dont"),
    pytest.param(rect(0, 0, 4, 2), rect(2, 0, 6, 2), 1.0, 1 / 3, id="half-overlap"),
    pytest.param(rect(0, 0, 4, 4), rect(1, 1, 3, 3), 0.0, 0.25, id="nested"),
    pytest.param(FULL, FULL, 0.0, 1.0, id="full"),
]


@pytest.mark.parametrize(("a", "b", "empty", "expected"), IOU)
def test_mask_iou(a, b, empty, expected):
    assert mask_iou(a, b, empty=empty) == pytest.approx(expected)
    assert mask_iou(b, a, empty=empty) == pytest.approx(expected)  # symmetric


@pytest.mark.parametrize(("a", "b", "empty", "expected"), IOU)
def test_mask_iou_with_known_boxes(a, b, empty, expected):
    box_a = None if a is None else mask_box(a)
    box_b = None if b is None else mask_box(b)
    assert mask_iou(a, b, empty=empty, box_a=box_a, box_b=box_b) == pytest.approx(expected)


def test_mask_iou_states_its_empty_rule():
    with pytest.raises(TypeError):
        mask_iou(EMPTY, EMPTY)  # every caller must say what two empty masks mean


@pytest.mark.parametrize(
    ("mask", "size", "expected"),
    [
        pytest.param(rect(0, 0, 2, 2, (2, 2)), (4, 4), rect(0, 0, 4, 4, (4, 4)), id="all-up"),
        pytest.param(mask_of((0, 0), shape=(2, 2)), (4, 4), rect(0, 0, 2, 2, (4, 4)), id="pixel-up"),
        pytest.param(rect(0, 0, 2, 2, (4, 4)), (2, 2), mask_of((0, 0), shape=(2, 2)), id="down"),
        pytest.param(rect(1, 0, 2, 1, (1, 2)), (6, 3), rect(3, 0, 6, 3, (3, 6)), id="non-square"),
        pytest.param(EMPTY, (W, H), EMPTY, id="same-size"),
    ],
)
def test_resize_mask(mask, size, expected):
    resized = resize_mask(mask, *size)
    assert resized.dtype == bool
    np.testing.assert_array_equal(resized, expected)


def test_resize_mask_is_pils_nearest():
    from PIL import Image

    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = rng.integers(1, 40, 2)
        new_w, new_h = (int(v) for v in rng.integers(1, 60, 2))
        mask = rng.random((h, w)) > 0.5
        expected = np.asarray(Image.fromarray(mask).resize((new_w, new_h), Image.Resampling.NEAREST))
        np.testing.assert_array_equal(resize_mask(mask, new_w, new_h), expected)


@pytest.mark.parametrize(
    "mask",
    [
        pytest.param(EMPTY, id="empty"),
        pytest.param(FULL, id="full"),
        pytest.param(mask_of((3, 5), (0, 0)), id="pixels"),
        pytest.param(np.random.default_rng(1).random((37, 53)) > 0.6, id="random"),
    ],
)
def test_rle_round_trip(mask):
    rle = encode_mask(mask)
    assert rle["size"] == list(mask.shape)
    assert isinstance(rle["counts"], bytes)
    np.testing.assert_array_equal(decode_rle(rle), mask)
    as_json = json.loads(json.dumps(rle_to_json(rle)))
    assert as_json == mask_to_json(mask)
    assert as_json["counts"] == rle["counts"].decode("ascii")
    np.testing.assert_array_equal(decode_rle(as_json), mask)  # str counts decode too
    assert rle_to_json(as_json) == as_json  # already JSON: unchanged


def test_encode_rejects_a_stack():
    with pytest.raises(ValueError, match="H×W"):
        encode_mask(np.zeros((2, H, W), bool))


# ------------------------------------------------------------------------------ FrameResult


def result(frame_idx: int, ids: tuple[int, ...], masks: list[np.ndarray]) -> FrameResult:
    stack = np.stack(masks) if masks else np.zeros((0, H, W), bool)
    return FrameResult(frame_idx, ids, stack, np.arange(1, len(ids) + 1, dtype=np.float32) / 10)


A, B, C = rect(0, 0, 4, 3), rect(4, 0, 8, 3), rect(2, 2, 6, 6)


@pytest.mark.parametrize(
    ("ids", "keep", "expected"),
    [
        ((1, 2), {1, 2, 3}, (1, 2)),
        ((1, 2), [2], (2,)),
        ((1, 2), {}, ()),
        ((3, 1, 2), (1, 3), (3, 1)),  # the result's order, not the selection's
    ],
)
def test_select(ids, keep, expected):
    masks = [A, B, C][: len(ids)]
    full = result(4, ids, masks)
    picked = full.select(keep)
    assert picked.object_ids == expected
    for object_id in expected:
        np.testing.assert_array_equal(picked.mask_of(object_id), full.mask_of(object_id))
        assert picked.scores[expected.index(object_id)] == full.scores[ids.index(object_id)]
    if expected == ids:
        assert picked is full


@pytest.mark.parametrize(("drop", "expected"), [(1, (2,)), (2, (1,)), (9, (1, 2))])
def test_without(drop, expected):
    full = result(4, (1, 2), [A, B])
    less = full.without(drop)
    assert less.object_ids == expected
    assert less is not full
    assert less.masks.shape == (len(expected), H, W)


def test_merge_first_wins_pixels():
    first = result(4, (1,), [C])
    second = result(4, (2, 1), [A, B])
    merged = first.merge(second)
    assert merged.object_ids == (1, 2)
    np.testing.assert_array_equal(merged.mask_of(1), C)
    np.testing.assert_array_equal(merged.mask_of(2), A & ~C)
    assert merged.scores.tolist() == pytest.approx([0.1, 0.1])
    assert not (merged.masks[0] & merged.masks[1]).any()


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (result(4, (1, 2), [A, B]), result(4, (2,), [C]), (1, 2)),  # nothing to add: first itself
        (result(4, (), []), result(4, (2,), [C]), (2,)),
        (result(4, (1,), [A]), result(4, (), []), (1,)),
    ],
)
def test_merge_ids(first, second, expected):
    merged = first.merge(second)
    assert merged.object_ids == expected
    if expected == first.object_ids:
        assert merged is first


def test_empty():
    empty = FrameResult.empty(7, H, W)
    assert (empty.frame_idx, empty.object_ids, empty.masks.shape, empty.scores.shape) == (
        7,
        (),
        (0, H, W),
        (0,),
    )
    assert empty.label_map().shape == (H, W)
