from __future__ import annotations

import gzip
import json
import threading
import time

import numpy as np
import pytest

from tracker.errors import ProjectError
from tracker.results import MaskStats, ResultStore, atomic_write, decode_rle
from tracker.types import FrameResult

W, H, N = 64, 48, 20


def rect(x0: int, y0: int, x1: int, y1: int, width: int = W, height: int = H) -> np.ndarray:
    """Bool mask with columns x0..x1-1 and rows y0..y1-1 set (pixel edges, like xyxy boxes)."""
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def result(
    frame_idx: int, masks: dict[int, np.ndarray], scores: dict[int, float] | None = None
) -> FrameResult:
    ids = tuple(masks)
    stack = np.stack([masks[i] for i in ids]) if ids else np.zeros((0, H, W), dtype=bool)
    score_list = [(scores or {}).get(i, 1.0) for i in ids]
    return FrameResult(frame_idx, ids, stack, np.asarray(score_list, dtype=np.float32))


def same_store(a: ResultStore, b: ResultStore) -> None:
    assert a == b
    assert a.frames() == b.frames()
    for frame_idx in a.frames():
        ra, rb = a.get(frame_idx), b.get(frame_idx)
        assert ra.object_ids == rb.object_ids
        np.testing.assert_array_equal(ra.masks, rb.masks)
        np.testing.assert_array_equal(ra.scores, rb.scores)
        for object_id in ra.object_ids:
            assert a.stats(frame_idx, object_id) == b.stats(frame_idx, object_id)


@pytest.fixture
def store() -> ResultStore:
    s = ResultStore(W, H, N)
    s.put(result(0, {1: rect(2, 3, 12, 9), 2: rect(30, 30, 40, 44)}, {1: 0.9, 2: 0.25}))
    s.put(result(5, {1: rect(4, 4, 5, 5), 2: np.zeros((H, W), bool)}))
    s.put(result(7, {2: rect(0, 0, W, H)}))
    return s


@pytest.mark.parametrize(
    "masks",
    [
        {1: rect(2, 3, 12, 9)},
        {1: rect(2, 3, 12, 9), 3: rect(40, 10, 60, 20)},
        {4: np.zeros((H, W), bool)},
        {1: rect(0, 0, W, H)},
        {},
        {2: (np.indices((H, W)).sum(0) % 2 == 0)},  # checkerboard: worst case for RLE
    ],
    ids=["one", "two", "empty-mask", "full-frame", "no-objects", "checkerboard"],
)
def test_put_get_round_trip_is_exact(masks):
    store = ResultStore(W, H, N)
    scores = {object_id: 0.1 * object_id for object_id in masks}
    store.put(result(3, masks, scores))
    got = store.get(3)
    assert got.frame_idx == 3
    assert got.object_ids == tuple(sorted(masks))
    assert got.masks.dtype == bool and got.masks.shape == (len(masks), H, W)
    for object_id in masks:
        np.testing.assert_array_equal(got.mask_of(object_id), masks[object_id])
        np.testing.assert_array_equal(store.mask(3, object_id), masks[object_id])
        assert got.scores[got.object_ids.index(object_id)] == np.float32(scores[object_id])
    assert 3 in store and len(store) == 1


@pytest.mark.parametrize(
    "mask, area, box, centroid",
    [
        (rect(2, 3, 12, 9), 60, (2.0, 3.0, 12.0, 9.0), (6.5, 5.5)),  # columns 2..11, rows 3..8
        (rect(4, 5, 5, 6), 1, (4.0, 5.0, 5.0, 6.0), (4.0, 5.0)),  # one pixel: its indices
        (rect(0, 0, W, H), W * H, (0.0, 0.0, float(W), float(H)), ((W - 1) / 2, (H - 1) / 2)),
        (rect(0, 0, 2, 1) | rect(0, 0, 1, 3), 4, (0.0, 0.0, 2.0, 3.0), (0.25, 0.75)),  # an L
        (np.zeros((H, W), bool), 0, None, None),
    ],
    ids=["rect", "pixel", "full", "L-shape", "empty"],
)
def test_stats_at_put_time(mask, area, box, centroid):
    store = ResultStore(W, H, N)
    store.put(result(1, {7: mask}, {7: 0.5}))
    stats = store.stats(1, 7)
    assert stats == MaskStats(area, box, centroid, 0.5)
    assert stats.visible is (area > 0)


def test_put_replaces_only_the_objects_it_carries(store):
    store.put(result(0, {2: rect(1, 1, 2, 2)}, {2: 0.75}))
    got = store.get(0)
    assert got.object_ids == (1, 2)
    np.testing.assert_array_equal(got.mask_of(1), rect(2, 3, 12, 9))
    np.testing.assert_array_equal(got.mask_of(2), rect(1, 1, 2, 2))
    assert store.stats(0, 2).score == 0.75


def test_queries(store):
    assert store.frames() == [0, 5, 7]
    assert store.object_ids == [1, 2]
    assert store.objects_on(7) == [2]
    assert store.objects_on(3) == []
    assert store.get(3) is None and store.mask(3, 1) is None and store.stats(7, 1) is None
    assert len(store) == 3 and 5 in store and 6 not in store
    rle = store.rle(0, 1)
    assert rle["size"] == [H, W] and isinstance(rle["counts"], bytes)
    np.testing.assert_array_equal(decode_rle(rle), rect(2, 3, 12, 9))
    assert [(f, o) for f, o, _, _ in store.items()] == [(0, 1), (0, 2), (5, 1), (5, 2), (7, 2)]


def test_remove_object_and_drop_frames(store):
    assert store.remove_object(2) == 3
    assert store.object_ids == [1]
    assert store.frames() == [0, 5, 7]  # a frame stays stored even when its last object goes
    assert store.get(7).object_ids == ()
    assert store.drop_frames([5, 7, 11]) == 2
    assert store.frames() == [0]
    store.clear()
    assert len(store) == 0


def test_copy_is_independent(store):
    other = store.copy()
    same_store(store, other)
    other.remove_object(1)
    other.put(result(9, {3: rect(0, 0, 3, 3)}))
    assert store.object_ids == [1, 2] and 9 not in store


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: s.put(FrameResult(0, (1,), np.zeros((1, H + 1, W), bool), np.ones(1, np.float32))),
        lambda s: s.put(result(N, {1: rect(0, 0, 1, 1)})),
        lambda s: s.put(result(-1, {1: rect(0, 0, 1, 1)})),
        lambda s: s.put_rle(0, 1, {"size": [W, H], "counts": b"0"}),
        lambda s: ResultStore(0, H, N),
    ],
    ids=["wrong-size", "frame-past-end", "negative-frame", "rle-size", "zero-width"],
)
def test_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        bad(ResultStore(W, H, N))


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed-rle", "uncompressed-rle"])
def test_put_rle(compressed):
    from pycocotools import mask as mask_utils

    mask = rect(5, 6, 20, 30)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if not compressed:  # column-major run lengths, as YouTube-VIS ground truth stores them
        flat = mask.flatten(order="F").astype(np.int64)
        changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
        rle = {"size": [H, W], "counts": np.diff(np.concatenate([[0], changes])).tolist()}
    store = ResultStore(W, H, N)
    store.put_rle(2, 4, rle, score=0.5)
    np.testing.assert_array_equal(store.mask(2, 4), mask)
    assert store.stats(2, 4) == MaskStats(int(mask.sum()), (5.0, 6.0, 20.0, 30.0), (12.0, 17.5), 0.5)


@pytest.mark.parametrize("name", ["results.jsonl", "results.jsonl.gz"])
def test_save_load_round_trip_is_exact(store, tmp_path, name):
    path = store.save(tmp_path / name)
    loaded = ResultStore.load(path)
    same_store(store, loaded)
    assert (loaded.width, loaded.height, loaded.num_frames) == (W, H, N)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary files left
    if name.endswith(".gz"):
        with gzip.open(path, "rt") as handle:
            assert json.loads(handle.readline())["format"] == "tvt-results"


def test_dict_round_trip(store):
    data = json.loads(json.dumps(store.to_dict()))
    same_store(store, ResultStore.from_dict(data))


def test_failed_save_keeps_the_old_file(store, tmp_path, monkeypatch):
    path = store.save(tmp_path / "results.jsonl")
    before = path.read_bytes()

    def broken(stream):
        stream.write("half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "dump", broken)
    with pytest.raises(RuntimeError):
        store.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]


def test_atomic_write_cleans_up(tmp_path):
    with pytest.raises(KeyError):
        with atomic_write(tmp_path / "x.txt") as handle:
            handle.write("partial")
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "not a tracked-results file"),
        ("not json\n", "not a tracked-results file"),
        ('{"format": "something-else"}\n', "not a tracked-results file"),
        (
            '{"format": "tvt-results", "version": 99, "width": 4, "height": 4, "num_frames": 1}\n',
            "newer version",
        ),
        (
            '{"format": "tvt-results", "version": 1, "width": 4, "height": 4, "num_frames": 1}\n{"frame": 0}\n',
            "corrupt",
        ),
        (
            '{"format": "tvt-results", "version": 1, "width": 4, "height": 4, "num_frames": 1}\n{"frame": 3, "objects": []}\n',
            "corrupt",
        ),
        (
            '{"format": "tvt-results", "version": 1, "width": 4, "height": 4, "num_frames": 1}\n{"fra',
            "corrupt",
        ),
    ],
    ids=["empty", "not-json", "wrong-format", "newer", "missing-objects", "frame-out-of-range", "truncated"],
)
def test_load_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "results.jsonl"
    path.write_text(content)
    with pytest.raises(ProjectError, match=message) as info:
        ResultStore.load(path)
    assert "\n" not in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        ResultStore.load(tmp_path / "nope.jsonl")


def test_concurrent_puts_and_reads():
    store = ResultStore(W, H, 200)
    errors = []

    def writer(offset: int) -> None:
        try:
            for frame_idx in range(offset, 200, 4):
                store.put(result(frame_idx, {1 + offset: rect(offset, offset, offset + 5, offset + 5)}))
                store.frames()
                store.nbytes()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert store.frames() == list(range(200))
    assert store.object_ids == [1, 2, 3, 4]


def test_memory_stays_small_for_a_long_720p_video():
    """1000 frames of a moving 720p blob must cost well under a few MB."""
    width, height, frames = 1280, 720, 1000
    radius = 90
    yy, xx = np.mgrid[-radius:radius, -radius:radius]
    disc = xx**2 + yy**2 <= radius**2
    store = ResultStore(width, height, frames)
    canvas = np.zeros((1, height, width), dtype=bool)
    scores = np.ones(1, np.float32)
    put_time = 0.0
    for frame_idx in range(frames):
        x = 100 + frame_idx  # moves 1 px a frame
        y = 200 + (frame_idx % 200)
        canvas[:] = False
        canvas[0, y - radius : y + radius, x - radius : x + radius] = disc
        started = time.perf_counter()
        store.put(FrameResult(frame_idx, (1,), canvas, scores))
        put_time += time.perf_counter() - started
    started = time.perf_counter()
    for frame_idx in range(0, frames, 10):
        store.get(frame_idx)
    get_ms = (time.perf_counter() - started) / (frames / 10) * 1000
    nbytes = store.nbytes()
    print(
        f"\nResultStore 1280x720, 1000 frames, one r={radius} disc: {nbytes / 1e6:.3f} MB "
        f"({nbytes / frames:.0f} B/frame); put {put_time / frames * 1000:.2f} ms, get {get_ms:.2f} ms"
    )
    assert nbytes < 3_000_000
    rows, cols = np.nonzero(store.mask(500, 1))
    assert store.stats(500, 1).centroid == pytest.approx((cols.mean(), rows.mean()))
    assert store.stats(500, 1).box == (510.0, 210.0, 690.0, 390.0)
