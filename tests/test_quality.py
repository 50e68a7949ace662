"""DAVIS J / F / J&F: hand-checked cases, DAVIS's edge cases and every input layout."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tracker.errors import InputError
from tracker.quality import (
    EvalReport,
    boundary_f_measure,
    boundary_radius,
    dilate_disk,
    evaluate,
    evaluate_sequence,
    mean_recall_decay,
    region_similarity,
    seg2bmap,
)

SIZE = (100, 100)  # diagonal 141 px → DAVIS tolerance radius ceil(0.008 · 141.4) = 2


def square(top: int, left: int, side: int, shape: tuple[int, int] = SIZE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def disc(cy: float, cx: float, radius: float, shape: tuple[int, int] = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def brute_dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Reference dilation: every pixel within the disk dx² + dy² ≤ r² of a set pixel."""
    out = np.zeros_like(mask)
    height, width = mask.shape
    for y, x in zip(*np.nonzero(mask), strict=True):
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                if dx * dx + dy * dy <= radius * radius and 0 <= y + dy < height and 0 <= x + dx < width:
                    out[y + dy, x + dx] = True
    return out


def reference_f(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """DAVIS's f_measure written out naively (full-image boundaries, brute-force dilation)."""
    gt_b, pred_b = seg2bmap(gt), seg2bmap(pred)
    n_gt, n_pred = gt_b.sum(), pred_b.sum()
    if n_gt == 0 and n_pred == 0:
        return 1.0
    if n_gt == 0 or n_pred == 0:
        return 0.0
    precision = (pred_b & brute_dilate(gt_b, radius)).sum() / n_pred
    recall = (gt_b & brute_dilate(pred_b, radius)).sum() / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------- per-frame measures


@pytest.mark.parametrize(
    "mask",
    [
        square(20, 30, 25),
        disc(50, 50, 17.5),
        square(0, 0, 40),  # touching the top-left border
        square(70, 70, 30),  # touching the bottom-right border
        np.ones(SIZE, dtype=bool),  # whole frame: empty boundary on both sides
    ],
    ids=["square", "disc", "top-left", "bottom-right", "full"],
)
def test_identical_masks_score_one(mask):
    assert region_similarity(mask, mask.copy()) == 1.0
    assert boundary_f_measure(mask, mask.copy()) == 1.0


@pytest.mark.parametrize(
    ("gt", "pred", "j", "f"),
    [
        (np.zeros(SIZE, bool), np.zeros(SIZE, bool), 1.0, 1.0),  # DAVIS: nothing to find, nothing found
        (np.zeros(SIZE, bool), square(10, 10, 20), 0.0, 0.0),  # false positive
        (square(10, 10, 20), np.zeros(SIZE, bool), 0.0, 0.0),  # missed
    ],
    ids=["empty-empty", "empty-gt", "empty-pred"],
)
def test_empty_masks_follow_davis(gt, pred, j, f):
    assert region_similarity(gt, pred) == j
    assert boundary_f_measure(gt, pred) == f


@pytest.mark.parametrize("shift", [1, 2])
@pytest.mark.parametrize("side", [10, 30])
def test_shifted_square_within_tolerance(side, shift):
    gt = square(30, 30, side)
    pred = square(30, 30 + shift, side)
    # two s×s squares offset by d along x overlap in an s×(s-d) strip
    assert region_similarity(gt, pred) == pytest.approx((side - shift) / (side + shift))
    assert boundary_radius(SIZE) == 2
    assert boundary_f_measure(gt, pred) == 1.0  # every boundary pixel moved d ≤ 2 px


def test_shifted_square_beyond_tolerance_by_hand():
    # 2×2 square at rows 1-2, cols 1-2 vs the same at cols 3-4, tolerance 1 px (a plus-shaped
    # disk). seg2bmap puts each boundary on the ring of the 3×3 block above-left of the square
    # minus its centre: GT ring cols 0-2, prediction ring cols 2-4, 8 pixels each.
    gt = square(1, 1, 2, (6, 6))
    pred = square(1, 3, 2, (6, 6))
    expected_ring = np.array(
        [[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0]] + [[0] * 6] * 3, dtype=bool
    )
    np.testing.assert_array_equal(seg2bmap(gt), expected_ring)
    # GT ring pixels with a prediction-ring pixel at distance ≤ 1: (0,1), (0,2), (1,2), (2,1),
    # (2,2) → recall 5/8; by symmetry precision 5/8 → F = 5/8.
    assert region_similarity(gt, pred) == 0.0
    assert boundary_f_measure(gt, pred, bound_th=1) == pytest.approx(5 / 8)


def test_one_pixel_erosion_keeps_boundary_within_tolerance():
    side = 40
    gt = square(30, 30, side)
    pred = square(31, 31, side - 2)
    assert region_similarity(gt, pred) == pytest.approx((side - 2) ** 2 / side**2)
    assert boundary_f_measure(gt, pred) == 1.0


@pytest.mark.parametrize(
    ("shape", "bound_th", "radius"),
    [
        ((480, 854), 0.008, 8),  # DAVIS 480p
        ((1080, 1920), 0.008, 18),
        (SIZE, 0.008, 2),
        (SIZE, 3, 3),  # ≥ 1 is a radius in pixels
        (SIZE, 1.5, 2),
    ],
)
def test_boundary_radius(shape, bound_th, radius):
    assert boundary_radius(shape, bound_th) == radius


def test_boundary_radius_rejects_non_positive():
    with pytest.raises(InputError):
        boundary_radius(SIZE, 0)


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 5])
def test_dilate_disk_matches_brute_force(radius):
    rng = np.random.default_rng(radius)
    mask = rng.random((23, 31)) < 0.04
    np.testing.assert_array_equal(dilate_disk(mask, radius), brute_dilate(mask, radius))


def test_f_measure_matches_naive_davis_formula():
    rng = np.random.default_rng(7)
    for _ in range(25):
        height, width = rng.integers(8, 30, size=2)
        gt = rng.random((height, width)) < rng.uniform(0.05, 0.5)
        pred = rng.random((height, width)) < rng.uniform(0.05, 0.5)
        radius = int(rng.integers(1, 4))
        assert boundary_f_measure(gt, pred, bound_th=radius) == pytest.approx(reference_f(gt, pred, radius))


def test_masks_of_different_sizes_are_refused():
    with pytest.raises(InputError):
        region_similarity(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


@pytest.mark.parametrize(
    ("values", "mean", "recall", "decay"),
    [
        ([1.0] * 8, 1.0, 1.0, 0.0),
        ([1, 1, 1, 1, 0, 0, 0, 0], 0.5, 0.5, 1.0),  # bins [0:3] and [5:8]
        ([0.2, 0.4, 0.6, 0.8], 0.5, 0.5, 0.3 - 0.7),  # n=4: edges 0,1,2,2,3 → bins [0:2] and [2:4]
        ([0.7], 0.7, 1.0, 0.0),
        ([0.5, 0.5], 0.5, 0.0, 0.0),  # recall is strictly > 0.5
    ],
)
def test_mean_recall_decay_like_davis(values, mean, recall, decay):
    assert mean_recall_decay(values) == pytest.approx((mean, recall, decay))


def test_mean_recall_decay_of_nothing_is_nan():
    assert all(math.isnan(v) for v in mean_recall_decay([]))


# ---------------------------------------------------------------------------- whole sequences

# Sequence "alpha": 5 frames, object 1 a 20 px square (predicted 2 px to the right on frames
# 1-3), object 2 a 10 px square (perfect). Sequence "beta": 4 frames, one disc, the predicted
# frame 2 is missing. With the first and last frames skipped:
#   alpha/1: J = 18/22 on frames 1-3, F = 1;  alpha/2: J = F = 1;  beta/1: J = F = (1 + 0) / 2.
ALPHA_J1 = 18 / 22


def alpha_frames(predicted: bool) -> dict[int, np.ndarray]:
    frames = {}
    for frame in range(5):
        labels = np.zeros(SIZE, np.uint8)
        shift = 2 if predicted and 1 <= frame <= 3 else 0
        labels[square(20, 20 + shift, 20)] = 1
        labels[square(60, 60, 10)] = 2
        frames[frame] = labels
    return frames


def beta_frames(predicted: bool) -> dict[int, np.ndarray]:
    frames = {}
    for frame in range(4):
        if predicted and frame == 2:
            continue  # missing prediction
        frames[frame] = disc(50, 40 + 3 * frame, 12).astype(np.uint8)
    return frames


def write_pngs(folder: Path, frames: dict[int, np.ndarray], mode: str = "P") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, labels in frames.items():
        image = Image.fromarray(labels.astype(np.uint8))  # L
        if mode == "P":
            image.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        image.save(folder / f"{frame:05d}.png")


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*.png")):
            archive.write(file, file.relative_to(folder.parent).as_posix())  # keeps the top folder
    return target


def layout_multi(root: Path, predicted: bool) -> Path:
    folder = root / ("pred" if predicted else "gt")
    write_pngs(folder / "alpha", alpha_frames(predicted), "L" if predicted else "P")
    write_pngs(folder / "beta", beta_frames(predicted), "L" if predicted else "P")
    return folder


def layout_zip(root: Path, predicted: bool) -> Path:
    folder = layout_multi(root / "unzipped", predicted)
    return zip_folder(folder, root / f"{folder.name}.zip")


def layout_export(root: Path, predicted: bool) -> Path:
    if not predicted:
        return layout_multi(root, predicted)
    export = root / "export"
    write_pngs(export / "masks" / "alpha", alpha_frames(True))
    write_pngs(export / "masks" / "beta", beta_frames(True))
    write_pngs(export / "thumbnails", {0: np.full(SIZE, 9, np.uint8)})  # not masks: ignored
    return export


def layout_memory(root: Path, predicted: bool) -> dict:
    return {"alpha": alpha_frames(predicted), "beta": beta_frames(predicted)}


@pytest.mark.parametrize("layout", [layout_multi, layout_zip, layout_export, layout_memory])
def test_evaluate_two_sequences(tmp_path, layout):
    report = evaluate(layout(tmp_path, True), layout(tmp_path, False))
    rows = {(o.sequence, o.object_id): o for o in report.objects}
    assert set(rows) == {("alpha", 1), ("alpha", 2), ("beta", 1)}
    assert rows["alpha", 1].frames == (1, 2, 3)
    assert rows["alpha", 1].j == pytest.approx((ALPHA_J1,) * 3)
    assert rows["alpha", 1].f == (1.0, 1.0, 1.0)
    assert rows["alpha", 1].jf_mean == pytest.approx((ALPHA_J1 + 1) / 2)
    assert rows["alpha", 2].j_mean == rows["alpha", 2].f_mean == 1.0
    assert rows["beta", 1].j == (1.0, 0.0) and rows["beta", 1].f == (1.0, 0.0)
    assert rows["beta", 1].j_recall == 0.5
    sequences = {s.sequence: s for s in report.sequences}
    assert sequences["alpha"].j_mean == pytest.approx((ALPHA_J1 + 1) / 2)
    assert sequences["beta"].missing_frames == (2,)
    # overall = mean over the 3 objects, not over the 2 sequences
    assert report.overall.j_mean == pytest.approx((ALPHA_J1 + 1 + 0.5) / 3)
    assert report.overall.f_mean == pytest.approx((1 + 1 + 0.5) / 3)
    assert report.overall.num_objects == 3 and report.overall.num_sequences == 2
    assert any("no prediction" in w for w in report.warnings)


def test_evaluate_single_sequence_folders_and_zip(tmp_path):
    write_pngs(tmp_path / "gt" / "alpha", alpha_frames(False))
    write_pngs(tmp_path / "pred" / "whatever", alpha_frames(True), mode="L")  # names need not agree
    expected = evaluate(tmp_path / "pred" / "whatever", tmp_path / "gt" / "alpha")
    assert [o.sequence for o in expected.objects] == ["alpha", "alpha"]
    assert expected.objects[0].j_mean == pytest.approx(ALPHA_J1)
    archive = zip_folder(tmp_path / "pred" / "whatever", tmp_path / "pred.zip")
    from_zip = evaluate(archive, tmp_path / "gt" / "alpha")
    assert from_zip.overall == expected.overall


def test_skip_first_last_is_the_davis_default():
    gt = alpha_frames(False)
    pred = {frame: labels.copy() for frame, labels in gt.items()}
    pred[0][:] = 0  # only the first and the last frame are wrong
    pred[4][:] = 0
    assert evaluate(pred, gt).overall.jf_mean == 1.0
    everything = evaluate(pred, gt, skip_first_last=False)
    assert everything.overall.j_mean == pytest.approx(3 / 5)
    assert everything.objects[0].frames == (0, 1, 2, 3, 4)


def test_void_label_counts_as_background():
    gt = {f: np.where(labels == 2, 255, labels).astype(np.uint8) for f, labels in alpha_frames(False).items()}
    pred = {f: np.where(labels == 2, 0, labels).astype(np.uint8) for f, labels in alpha_frames(False).items()}
    report = evaluate(pred, gt)
    assert [o.object_id for o in report.objects] == [1]
    assert report.overall.jf_mean == 1.0


def test_predicted_ids_missing_from_truth_are_ignored():
    gt = alpha_frames(False)
    pred = {f: np.where(labels == 2, 7, labels).astype(np.uint8) for f, labels in gt.items()}
    report = evaluate(pred, gt)
    rows = {o.object_id: o for o in report.objects}
    assert rows[1].j_mean == 1.0 and rows[2].j_mean == 0.0
    assert any("not in the ground truth" in w for w in report.warnings)


def test_object_absent_in_both_on_a_frame_counts_as_correct():
    gt = {
        0: square(10, 10, 10).astype(np.uint8),
        1: np.zeros(SIZE, np.uint8),
        2: square(10, 12, 10).astype(np.uint8),
    }
    rows = evaluate_sequence(dict(gt), gt, skip_first_last=False)
    assert rows[0].j == (1.0, 1.0, 1.0)


def test_per_object_masks_and_result_store_duck():
    gt = {f: {1: square(20, 20, 20)} for f in range(4)}

    class Store:  # what tracker.results.ResultStore offers
        object_ids = [1]

        def frames(self):
            return [0, 1, 2, 3]

        def mask(self, frame, object_id):
            return square(20, 21, 20) if frame == 2 else (None if frame == 1 else square(20, 20, 20))

    rows = evaluate_sequence(Store(), gt)
    assert rows[0].j == pytest.approx((0.0, 19 / 21))
    assert rows[0].f == (0.0, 1.0)


def test_colour_png_with_davis_palette_is_read(tmp_path):
    from tracker.export import davis_palette

    palette = np.asarray(davis_palette(), np.uint8).reshape(256, 3)
    write_pngs(tmp_path / "gt", alpha_frames(False))
    (tmp_path / "pred").mkdir()
    for frame, labels in alpha_frames(False).items():
        Image.fromarray(palette[labels]).save(tmp_path / "pred" / f"{frame:05d}.png")
    assert evaluate(tmp_path / "pred", tmp_path / "gt").overall.jf_mean == 1.0


@pytest.mark.parametrize(
    ("make_pred", "make_gt", "message"),
    [
        (
            lambda p: {f: np.zeros((50, 50), np.uint8) + 1 for f in range(5)},
            lambda p: alpha_frames(False),
            "50×50",
        ),
        (
            lambda p: alpha_frames(True),
            lambda p: {0: alpha_frames(False)[0], 1: alpha_frames(False)[1]},
            "skip",
        ),
        (
            lambda p: alpha_frames(True),
            lambda p: {f: np.zeros(SIZE, np.uint8) for f in range(4)},
            "no object",
        ),
        (lambda p: p / "missing", lambda p: alpha_frames(False), "does not exist"),
        (
            lambda p: {"x": alpha_frames(True)},
            lambda p: {"a": alpha_frames(False), "b": beta_frames(False)},
            "No sequence",
        ),
        (lambda p: 42, lambda p: alpha_frames(False), "Cannot read"),
    ],
    ids=["size-mismatch", "too-few-frames", "no-objects", "missing-path", "no-common-sequence", "bad-type"],
)
def test_unusable_inputs_raise_input_error(tmp_path, make_pred, make_gt, message):
    with pytest.raises(InputError, match=message):
        evaluate(make_pred(tmp_path), make_gt(tmp_path))


def test_size_mismatch_from_png_folders(tmp_path):
    write_pngs(tmp_path / "gt", alpha_frames(False))
    write_pngs(tmp_path / "pred", {f: np.zeros((40, 60), np.uint8) for f in range(5)})
    with pytest.raises(InputError, match="60×40 but the ground truth is 100×100"):
        evaluate(tmp_path / "pred", tmp_path / "gt")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: Image.new("RGB", (8, 8), (1, 2, 3)).save(d / "00002.png"), "outside the DAVIS palette"),
        (lambda d: Image.new("F", (8, 8)).save(d / "00000.tiff"), "no PNG"),
        (lambda d: (d / "00002.png").write_bytes(b"not a png"), "not a readable PNG"),
        (lambda d: Image.new("L", (8, 8)).save(d / "mask.png"), "no frame number"),
    ],
    ids=["rgb", "no-png", "corrupt", "no-number"],
)
def test_bad_png_folders(tmp_path, setup, message):
    # frame 2 is evaluated (frames 0 and 4 are skipped and never read from the prediction)
    folder = tmp_path / "pred"
    folder.mkdir()
    setup(folder)
    write_pngs(tmp_path / "gt", alpha_frames(False))
    with pytest.raises(InputError, match=message):
        evaluate(folder, tmp_path / "gt")


def test_sequences_filter(tmp_path):
    report = evaluate(layout_memory(tmp_path, True), layout_memory(tmp_path, False), sequences=["beta"])
    assert [s.sequence for s in report.sequences] == ["beta"]
    with pytest.raises(InputError, match="gamma"):
        evaluate(layout_memory(tmp_path, True), layout_memory(tmp_path, False), sequences=["gamma"])


def test_report_table_and_json(tmp_path):
    report = evaluate(layout_memory(tmp_path, True), layout_memory(tmp_path, False))
    assert isinstance(report, EvalReport)
    table = report.to_table()
    assert "J&F-Mean" in table and "alpha" in table and "beta" in table
    for block in table.strip().split("\n\n"):
        lines = block.splitlines()[1:]  # below the block title
        assert len({len(line.rstrip()) for line in lines[:2]}) == 1  # header and rule align
    assert f"{report.overall.jf_mean:.3f}" in table

    path = tmp_path / "out" / "report.json"
    text = report.to_json(path, per_frame=True)
    data = json.loads(path.read_text())
    assert data == json.loads(text)
    assert data["overall"]["jf_mean"] == pytest.approx(report.overall.jf_mean)
    assert data["skip_first_last"] is True and data["bound_th"] == 0.008
    beta = next(o for o in data["objects"] if o["sequence"] == "beta")
    assert beta["frames"] == [1, 2] and beta["j"] == [1.0, 0.0]
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left nothing behind


def test_result_store_as_prediction():
    results = pytest.importorskip("tracker.results")
    from tracker.types import FrameResult

    store = results.ResultStore(SIZE[1], SIZE[0], 5)
    gt = alpha_frames(False)
    for frame, labels in gt.items():
        masks = np.stack([labels == 1, labels == 2])
        store.put(FrameResult(frame, (1, 2), masks, np.ones(2, np.float32)))
    assert evaluate(store, gt).overall.jf_mean == 1.0
