from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tracker.results import ResultStore
from tracker.trajectories import (
    TrajectoryPoint,
    compute_trajectories,
    trajectories_by_object,
)
from tracker.types import FrameResult, TrackedObject, VideoInfo

W, H, N = 80, 60, 10


def info(fps: float = 10.0, timestamps: tuple[float, ...] = ()) -> VideoInfo:
    return VideoInfo(Path("clip.mp4"), W, H, fps, N, W, H, timestamps=timestamps)


def square(x0: int, y0: int, size: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return mask


def put(store: ResultStore, frame_idx: int, masks: dict[int, np.ndarray]) -> None:
    ids = tuple(masks)
    store.put(FrameResult(frame_idx, ids, np.stack([masks[i] for i in ids]), np.ones(len(ids), np.float32)))


@pytest.fixture
def store() -> ResultStore:
    """Object 1: a 10×10 square moving 2 px right a frame on frames 0-3, lost on 4, absent after;
    object 2: a 4×4 square on frames 4 and 5 only."""
    s = ResultStore(W, H, N)
    for frame_idx in range(4):
        put(s, frame_idx, {1: square(10 + 2 * frame_idx, 20, 10)})
    put(s, 4, {1: np.zeros((H, W), bool), 2: square(50, 40, 4)})
    put(s, 5, {2: square(52, 40, 4)})
    return s


@pytest.mark.parametrize(
    "object_id, frame, expected",
    [
        # square over columns 10..19, rows 20..29: index means 14.5 / 24.5, box from pixel edges
        (1, 0, TrajectoryPoint(1, 0, 0.0, 14.5, 24.5, 10.0, 20.0, 10.0, 10.0, 100, True)),
        (1, 3, TrajectoryPoint(1, 3, 0.3, 20.5, 24.5, 16.0, 20.0, 10.0, 10.0, 100, True)),
        (1, 4, TrajectoryPoint(1, 4, 0.4, None, None, None, None, None, None, 0, False)),  # empty mask
        (1, 5, TrajectoryPoint(1, 5, 0.5, None, None, None, None, None, None, 0, False)),  # not stored
        (2, 0, TrajectoryPoint(2, 0, 0.0, None, None, None, None, None, None, 0, False)),
        (2, 5, TrajectoryPoint(2, 5, 0.5, 53.5, 41.5, 52.0, 40.0, 4.0, 4.0, 16, True)),
    ],
)
def test_known_points(store, object_id, frame, expected):
    points = {(p.object_id, p.frame): p for p in compute_trajectories(store, info())}
    got = points[(object_id, frame)]
    assert got.time == pytest.approx(expected.time)
    assert got == TrajectoryPoint(**{**expected.__dict__, "time": got.time})


def test_order_and_selection(store):
    points = compute_trajectories(store, info())
    assert [(p.object_id, p.frame) for p in points] == [(o, f) for o in (1, 2) for f in range(6)]
    chosen = compute_trajectories(store, info(), objects=[TrackedObject(2, "b", (0, 0, 0)), 1])
    assert [p.object_id for p in chosen][:6] == [2] * 6
    assert (
        compute_trajectories(store, info(), objects={7: TrackedObject(7, "x", (1, 2, 3))})[0].visible is False
    )


def test_by_object(store):
    grouped = trajectories_by_object(store, info())
    assert list(grouped) == [1, 2]
    assert [p.visible for p in grouped[1]] == [True, True, True, True, False, False]
    assert [p.frame for p in grouped[2] if p.visible] == [4, 5]


def test_time_uses_timestamps_for_variable_frame_rate(store):
    timestamps = (1.0, 1.1, 1.5, 1.6, 2.0, 2.2, 2.3, 2.4, 2.5, 2.6)
    points = compute_trajectories(store, info(timestamps=timestamps), objects=[1])
    assert [round(p.time, 6) for p in points] == [0.0, 0.1, 0.5, 0.6, 1.0, 1.2]


def test_empty_store():
    assert compute_trajectories(ResultStore(W, H, N), info()) == []
