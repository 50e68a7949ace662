"""Doubtful-frame detectors on synthetic mask series: planted faults land exactly where planted."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from tracker.errors import InputError
from tracker.flags import (
    ABSENT,
    AREA_JUMP,
    CLIP_DROP,
    FLAGGED,
    LOW_SCORE,
    OVERLAP,
    PRESENT,
    REAPPEARED,
    TOO_FAST,
    VANISHED,
    Flag,
    FlagThresholds,
    box_iou,
    compute_flags,
    flags_at,
    flags_from_store,
    next_flagged,
    previous_flagged,
    read_flags_json,
    stats_from_masks,
    timeline,
    write_flags_csv,
    write_flags_json,
)
from tracker.masks import MaskStats

WIDTH, HEIGHT = 640, 480
_YY, _XX = np.ogrid[:HEIGHT, :WIDTH]


def disc(cx: float, cy: float, radius: float) -> np.ndarray:
    return (_XX + 0.5 - cx) ** 2 + (_YY + 0.5 - cy) ** 2 <= radius * radius


@dataclass
class Track:
    """One disc's path; ``faults`` plants failures, ``jitter`` adds SAM-like wobble."""

    num_frames: int = 100
    start: tuple[float, float] = (100.0, 150.0)
    velocity: tuple[float, float] = (3.0, 1.0)
    radius: float = 15.0
    growth: float = 0.0  # radius growth per frame (approaching the camera)
    acceleration: float = 0.0  # speed gained per frame along the velocity
    teleport_at: int | None = None  # jumps (120, 60) px and stays there
    teleport_back_at: int | None = None  # ...and returns on this frame
    speed_up_at: int | None = None  # from here on 10× faster
    absent: range = range(0)
    resize_at: int | None = None
    resize_until: int | None = None  # exclusive; None = for good
    resize_factor: float = 2.0  # area factor
    jitter: float = 0.5
    seed: int = 0

    def centre(self, t: int) -> tuple[float, float]:
        vx, vy = self.velocity
        along = t + 0.5 * self.acceleration * t * t
        if self.speed_up_at is not None and t > self.speed_up_at:
            along += 9 * (t - self.speed_up_at)
        x, y = self.start[0] + vx * along, self.start[1] + vy * along
        if (
            self.teleport_at is not None
            and t >= self.teleport_at
            and (self.teleport_back_at is None or t < self.teleport_back_at)
        ):
            x, y = x + 120, y + 60
        return x, y

    def masks(self) -> dict[int, np.ndarray | None]:
        rng = np.random.default_rng(self.seed)
        out: dict[int, np.ndarray | None] = {}
        for t in range(self.num_frames):
            jx, jy = rng.uniform(-self.jitter, self.jitter, 2)
            radius = (self.radius + self.growth * t) * (1 + 0.04 * math.sin(t))  # ±8 % area wobble
            if (
                self.resize_at is not None
                and t >= self.resize_at
                and (self.resize_until is None or t < self.resize_until)
            ):
                radius *= math.sqrt(self.resize_factor)
            x, y = self.centre(t)
            out[t] = None if t in self.absent else disc(x + jx, y + jy, radius)
        return out


def series_of(*tracks: dict[int, np.ndarray | None], scores: dict[int, dict[int, float]] | None = None):
    num_frames = len(tracks[0])
    masks = {
        t: {i + 1: track[t] for i, track in enumerate(tracks) if track[t] is not None}
        for t in range(num_frames)
    }
    return stats_from_masks(masks, scores)


def found(flags: list[Flag]) -> set[tuple[int, int, str]]:
    return {(f.frame, f.object_id, f.reason) for f in flags}


def clip_series(
    num_frames: int, level: float = 30.0, drop_at: int | None = None, drop: float = 8.0, seed: int = 1
):
    """CLIP scores (100·cos) on every other frame, ±1 noise; from ``drop_at`` on ``drop`` lower."""
    rng = np.random.default_rng(seed)
    return {
        t: level + rng.uniform(-1, 1) - (drop if drop_at is not None and t >= drop_at else 0.0)
        for t in range(0, num_frames, 2)
    }


# ------------------------------------------------------------------------ normal tracks: no flags


@pytest.mark.parametrize(
    "track",
    [
        Track(),
        Track(jitter=1.5, seed=3),
        Track(velocity=(0.0, 0.0), jitter=1.0),  # standing still, wobbling
        Track(velocity=(1.0, 0.5), growth=0.25, num_frames=80),  # approaching: area ×4.4 over the clip
        Track(velocity=(0.5, 0.2), acceleration=0.1, num_frames=70),  # speeding up smoothly to 7.5 px/frame
        Track(velocity=(2.0, 2.0), radius=6.0, num_frames=60),  # small and fast for its size
    ],
    ids=["smooth", "jittery", "still", "approaching", "accelerating", "small"],
)
def test_normal_motion_is_never_flagged(track):
    series = series_of(track.masks())
    clip = {1: clip_series(track.num_frames)}
    assert compute_flags(series, clip) == []


# ------------------------------------------------------------------------ one planted fault each


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        (Track(teleport_at=20), {(20, 1, TOO_FAST)}),
        # a teleport and the jump back are two events
        (Track(teleport_at=20, teleport_back_at=21), {(20, 1, TOO_FAST), (21, 1, TOO_FAST)}),
        (Track(teleport_at=20, teleport_back_at=25), {(20, 1, TOO_FAST), (25, 1, TOO_FAST)}),
        # a real, lasting speed-up is flagged once, then becomes the normal speed
        (Track(speed_up_at=20, num_frames=40, velocity=(2.0, 0.5)), {(21, 1, TOO_FAST)}),
        (Track(absent=range(30, 35)), {(30, 1, VANISHED), (35, 1, REAPPEARED)}),
        (Track(absent=range(30, 100)), {(30, 1, VANISHED)}),
        (Track(absent=range(30, 31)), {(30, 1, VANISHED), (31, 1, REAPPEARED)}),
        (Track(resize_at=40), {(40, 1, AREA_JUMP)}),  # doubles and stays doubled
        (Track(resize_at=40, resize_factor=0.5), {(40, 1, AREA_JUMP)}),  # halves
        # a one-frame spike is flagged on entering and leaving it
        (Track(resize_at=40, resize_until=41), {(40, 1, AREA_JUMP), (41, 1, AREA_JUMP)}),
    ],
    ids=[
        "teleport",
        "teleport-and-back",
        "away-5-frames",
        "speed-up",
        "vanish",
        "vanish-for-good",
        "one-frame-gap",
        "double",
        "halve",
        "spike",
    ],
)
def test_planted_fault_lands_on_its_frame(track, expected):
    assert found(compute_flags(series_of(track.masks()))) == expected


def test_values_and_messages():
    flags = compute_flags(series_of(Track(absent=range(30, 35), resize_at=60).masks()))
    by_reason = {f.reason: f for f in flags}
    assert by_reason[VANISHED].value == 5 and "frame 30" in by_reason[VANISHED].message
    assert by_reason[REAPPEARED].value == 5
    assert by_reason[AREA_JUMP].value == pytest.approx(2.0, rel=0.15)
    assert "grew" in by_reason[AREA_JUMP].message


@pytest.mark.parametrize(
    ("low_frames", "absent", "expected"),
    [
        ({45}, range(0), {(45, 1, LOW_SCORE)}),
        ({45, 46, 47}, range(0), {(45, 1, LOW_SCORE), (46, 1, LOW_SCORE), (47, 1, LOW_SCORE)}),  # a state
        ({31}, range(30, 35), {(30, 1, VANISHED), (35, 1, REAPPEARED)}),  # empty mask: not "low score"
    ],
)
def test_low_score_only_where_the_mask_is_not_empty(low_frames, absent, expected):
    track = Track(absent=absent)
    scores = {t: {1: 0.2 if t in low_frames else 0.93} for t in range(track.num_frames)}
    assert found(compute_flags(series_of(track.masks(), scores=scores))) == expected


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        (clip_series(100, drop_at=60), {(60, 1, CLIP_DROP)}),  # a lasting drop flags once
        (clip_series(100, drop_at=60, drop=-8.0), set()),  # recovering / rising is fine
        (clip_series(100, drop_at=60, drop=3.0), set()),  # within the noise band
        ({**clip_series(100), 40: 18.0}, {(40, 1, CLIP_DROP)}),  # one bad sample
    ],
    ids=["drop", "rise", "small-drop", "one-sample"],
)
def test_clip_drop(samples, expected):
    series = series_of(Track().masks())
    assert found(compute_flags(series, {1: samples})) == expected
    keyed_by_frame = {(frame, 1): value for frame, value in samples.items()}  # the other accepted shape
    assert found(compute_flags(series, keyed_by_frame)) == expected


# ------------------------------------------------------------------------ everything at once

PLANTED = (
    {(20, 1, TOO_FAST), (30, 1, VANISHED), (35, 1, REAPPEARED), (40, 1, AREA_JUMP), (45, 1, LOW_SCORE)}
    | {(frame, obj, OVERLAP) for frame in range(50, 56) for obj in (1, 2)}
    | {(60, 1, CLIP_DROP)}
)


@pytest.fixture(scope="module")
def scenario():
    """Object 1 teleports at 20, vanishes 30-34, doubles from 40, has a low score at 45, is
    crossed by object 2 (same size, opposite direction: boxes IoU > 0.5 on frames 50-55 only)
    and looks less like the prompt from 60."""
    track = Track(teleport_at=20, absent=range(30, 35), resize_at=40)
    one = track.masks()
    # object 1 is at (377.5, 262.5) with area-doubled radius 15√2 at t = 52.5; object 2 passes
    # through the same point at (-2, +1) px/frame, so their centres are 5·|t - 52.5| px apart
    two = {t: disc(377.5 - 2 * (t - 52.5), 262.5 + (t - 52.5), 15 * math.sqrt(2)) for t in range(100)}
    scores = {t: {1: 0.2 if t == 45 else 0.93, 2: 0.9} for t in range(100)}
    series = series_of(one, two, scores=scores)
    clip = {1: clip_series(100, drop_at=60), 2: clip_series(100, level=27, seed=2)}
    return series, clip


def test_every_planted_fault_and_nothing_else(scenario):
    series, clip = scenario
    flags = compute_flags(series, clip)
    assert found(flags) == PLANTED
    assert [(f.frame, f.object_id) for f in flags] == sorted((f.frame, f.object_id) for f in flags)
    overlap = [f for f in flags if f.reason == OVERLAP and f.object_id == 1]
    assert all(f.other_object_id == 2 and f.value > 0.5 for f in overlap)
    assert box_iou(series[1][49].box, series[2][49].box) < 0.5  # just outside the planted window
    assert box_iou(series[1][56].box, series[2][56].box) < 0.5


def test_thresholds_select_detectors_and_validate(scenario):
    series, clip = scenario
    only = FlagThresholds(reasons=(VANISHED, REAPPEARED))
    assert found(compute_flags(series, clip, only)) == {(30, 1, VANISHED), (35, 1, REAPPEARED)}
    strict_overlap = FlagThresholds(overlap_iou=0.8)
    assert {f.frame for f in compute_flags(series, clip, strict_overlap) if f.reason == OVERLAP} == {52, 53}
    with pytest.raises(InputError):
        FlagThresholds(area_factor=1.0)
    with pytest.raises(InputError):
        FlagThresholds(reasons=("teleport",))


def test_untracked_frames_are_not_absences():
    masks = Track(num_frames=40).masks()
    tracked = {t: m for t, m in masks.items() if not 10 <= t < 20}  # frames 10-19 not tracked yet
    series = stats_from_masks({t: {1: m} for t, m in tracked.items()})
    assert compute_flags(series) == []


def test_plain_stats_inputs():
    # dicts or attribute objects with area/box/centroid/score, keyed either way
    stats = {(t, 7): {"area": 400, "box": (t * 3, 0, t * 3 + 20, 20), "score": 0.9} for t in range(10)}
    stats[(5, 7)] = {"area": 0, "box": None}
    assert found(compute_flags(stats)) == {(5, 7, VANISHED), (6, 7, REAPPEARED)}


# ------------------------------------------------------------------------ for the UI


def test_next_and_previous_flagged(scenario):
    series, clip = scenario
    flags = compute_flags(series, clip)
    table = [
        (next_flagged, 0, None, None, 20),
        (next_flagged, 20, None, None, 30),
        (next_flagged, 20, 2, None, 50),
        (next_flagged, 55, 2, None, None),
        (next_flagged, 0, 1, [AREA_JUMP], 40),
        (next_flagged, 60, None, None, None),
        (previous_flagged, 50, None, None, 45),
        (previous_flagged, 20, None, None, None),
        (previous_flagged, 99, 2, None, 55),
        (previous_flagged, 99, 1, [VANISHED, REAPPEARED], 35),
    ]
    for helper, frame, object_id, reasons, expected in table:
        assert helper(flags, frame, object_id, reasons) == expected, (
            helper.__name__,
            frame,
            object_id,
            reasons,
        )
    assert {f.reason for f in flags_at(flags, 50)} == {OVERLAP}
    assert len(flags_at(flags, 50, object_id=2)) == 1


def test_timeline_codes(scenario):
    series, clip = scenario
    flags = compute_flags(series, clip)
    codes = timeline(series, flags, 102, object_id=1)
    assert codes.dtype == np.uint8 and codes.shape == (102,)
    expected = np.full(102, PRESENT, np.uint8)
    expected[30:35] = ABSENT
    expected[100:] = ABSENT  # past the tracked frames
    for frame in (20, 30, 35, 40, 45, 50, 51, 52, 53, 54, 55, 60):
        expected[frame] = FLAGGED
    np.testing.assert_array_equal(codes, expected)
    assert timeline(series, flags, 10, object_id=9).tolist() == [ABSENT] * 10  # unknown object


class FakeStore:
    """The slice of tracker.results.ResultStore the adapters use."""

    def __init__(self, series: dict[int, dict[int, MaskStats | None]]) -> None:
        self._series = series

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._series)

    def frames(self) -> list[int]:
        return sorted({f for per_frame in self._series.values() for f in per_frame})

    def stats(self, frame: int, object_id: int) -> MaskStats | None:
        return self._series[object_id].get(frame)


def test_store_adapters(scenario):
    series, clip = scenario
    store = FakeStore(series)
    flags = flags_from_store(store, clip)
    assert found(flags) == PLANTED
    np.testing.assert_array_equal(timeline(store, flags, 100, 1), timeline(series, flags, 100, 1))


def test_real_result_store():
    results = pytest.importorskip("tracker.results")
    from tracker.types import FrameResult

    masks = Track(num_frames=30, absent=range(10, 12)).masks()
    store = results.ResultStore(WIDTH, HEIGHT, 30)
    for t, mask in masks.items():
        if mask is not None:
            store.put(FrameResult(t, (1,), mask[None], np.array([0.2 if t == 20 else 0.9], np.float32)))
        else:
            store.put(FrameResult(t, (1,), np.zeros((1, HEIGHT, WIDTH), bool), np.array([0.1], np.float32)))
    assert found(flags_from_store(store)) == {(10, 1, VANISHED), (12, 1, REAPPEARED), (20, 1, LOW_SCORE)}


# ------------------------------------------------------------------------ files


def test_json_and_csv_files(tmp_path, scenario):
    series, clip = scenario
    flags = compute_flags(series, clip)
    json_path = write_flags_json(flags, tmp_path / "out" / "flags.json")
    document = json.loads(json_path.read_text())
    assert document["version"] == 1 and document["thresholds"]["area_factor"] == 1.8
    assert read_flags_json(json_path) == [
        Flag(f.frame, f.object_id, f.reason, round(f.value, 4), f.message, f.other_object_id) for f in flags
    ]
    csv_path = write_flags_csv(flags, tmp_path / "out" / "flags.csv")
    with open(csv_path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["frame", "object", "reason", "value"]
    assert [(int(r[0]), int(r[1]), r[2]) for r in rows[1:]] == [
        (f.frame, f.object_id, f.reason) for f in flags
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "flags.csv",
        "flags.json",
    ]  # no temp files


def test_reading_a_bad_flags_file(tmp_path):
    path = tmp_path / "flags.json"
    path.write_text("{}")
    with pytest.raises(InputError):
        read_flags_json(path)
