"""Discovery's decisions with stand-ins (tests/standins_discovery.py), on generated scenes.

Stand-ins: a colour encoder instead of CLIP, connected components instead of SAM 2 proposals, a
colour-blob follower instead of SAM 2 tracking. Scenes are 128×96, 2 px a frame, checks every
20 frames (the default) unless a test says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tests.standins_discovery import (
    BLUE,
    HEIGHT,
    RED,
    WIDTH,
    Disc,
    StandInBlobTracker,
    StandInComponentDetector,
    entry_frame,
    render_scene,
)
from tracker.discovery import (
    Detection,
    Discovery,
    DiscoveryConfig,
    ExemplarBank,
    FoundRecord,
    assign_exclusive,
    exemplar_score,
    match_tracked,
)
from tracker.errors import InputError
from tracker.masks import mask_iou
from tracker.types import FrameResult


@dataclass
class Outcome:
    frames: list[np.ndarray]
    truth: list[list[np.ndarray]]
    store: dict[int, dict[int, np.ndarray]]
    discovery: Discovery
    tracker: StandInBlobTracker
    detector: StandInComponentDetector

    def present(self, object_id: int) -> list[int]:
        return sorted(f for f, masks in self.store.items() if object_id in masks and masks[object_id].any())

    def follows(self, object_id: int, disc: int, frames) -> bool:
        return all(
            mask_iou(self.store.get(f, {}).get(object_id), self.truth[f][disc], empty=1.0) >= 0.5
            for f in frames
        )

    def kinds(self) -> list[tuple[int, str]]:
        return [(r.object_id, r.kind) for r in self.discovery.records]


def run_scene(
    discs,
    num_frames,
    *,
    prompt="red",
    negative=None,
    accepted=(),
    accepted_at=0,
    exemplars=None,
    encoder=None,
    **config,
) -> Outcome:
    """Track the scene with the stand-ins, discovery on; ``accepted`` discs start as objects 1, 2, …
    on frame ``accepted_at``. Like a ``"both"`` run: backward from the frame before it to 0
    (when there is one), then forward from it to the end. ``exemplars``: the bank discovery
    starts from (a workspace's); ``encoder``: the colour encoder's settings."""
    frames, truth = render_scene(discs, num_frames)
    tracker = StandInBlobTracker(frames)
    detector = StandInComponentDetector(prompt, negative, encoder)
    store: dict[int, dict[int, np.ndarray]] = {}

    def put(result: FrameResult) -> None:
        entries = store.setdefault(result.frame_idx, {})
        for object_id, mask in zip(result.object_ids, result.masks, strict=True):
            entries[object_id] = mask

    discovery = Discovery(
        DiscoveryConfig(**config), detector, tracker, frames.__getitem__, on_backfill=put, exemplars=exemplars
    )
    for object_id, disc in enumerate(accepted, 1):
        tracker.add_object(object_id, accepted_at, truth[accepted_at][disc])
        discovery.seed(object_id, frames[accepted_at], truth[accepted_at][disc])
    legs = [(range(accepted_at, num_frames), 1, 0)]
    if accepted_at > 0:
        legs.insert(0, (range(accepted_at - 1, -1, -1), -1, accepted_at - 1))
    for frames_of_leg, step, behind_limit in legs:
        tracker.begin_leg(frames_of_leg[0], step)
        discovery.begin_leg(frames_of_leg[0], step, behind_limit)
        for frame_idx in frames_of_leg:
            result = tracker.step(frame_idx)
            report = discovery.after_frame(result)
            put(report.result if report is not None else result)
    return Outcome(frames, truth, store, discovery, tracker, detector)


def still(x, y):
    return lambda f: (x, y)


def entering_at(start, y, speed=2.0, radius=10):
    """Enters from the left edge: its first pixel shows on frame ``start``."""
    return lambda f: None if f < start else (-radius + 1 + speed * (f - start), y)


# ---------------------------------------------------------------------- new objects
def test_entering_disc_gets_a_new_id_within_one_check_and_masks_start_at_entry():
    discs = [Disc(BLUE, 10, still(90, 25)), Disc(RED, 10, entering_at(30, 60))]
    out = run_scene(discs, 100, negative="blue")

    assert out.kinds() == [(1, "discovered")]
    record = out.discovery.records[0]
    area = [int(masks[1].sum()) for masks in out.truth]
    fully_visible = next(f for f, a in enumerate(area) if a >= 0.99 * max(area))
    first_check_after = next(f for f in range(fully_visible, 100) if f % 20 == 0)
    assert record.frame <= first_check_after + 20  # seen at one check, confirmed at the next
    entry = entry_frame(out.truth, 1)
    assert entry == 30
    assert record.first_frame == entry
    assert out.present(1)[0] == entry
    assert out.follows(1, 1, range(entry + 3, 100))


def test_a_disc_gone_before_the_accepted_frame_is_found_on_the_backward_leg():
    def early(f):  # there from the start, leaves on the right on frame ~40
        return (30 + 2 * f, 70) if f < 50 else None

    discs = [Disc(RED, 10, still(100, 20)), Disc(RED, 10, early)]
    out = run_scene(discs, 100, accepted=[0], accepted_at=60)

    assert out.kinds() == [(2, "discovered")]
    record = out.discovery.records[0]
    assert record.frame == 19  # seen on the check at 39, again at 19 (checks count from 59 down)
    last = max(f for f in range(100) if out.truth[f][1].any())
    assert record.first_frame == last  # tracked forward, against the leg, to where it left
    assert out.present(2) == list(range(0, last + 1))
    assert out.follows(2, 1, range(0, last - 2))
    assert out.follows(1, 0, range(0, 100))


def test_a_new_object_is_only_shown_once_confirmed():
    discs = [Disc(RED, 10, entering_at(30, 60))]
    frames, truth = render_scene(discs, 100)
    tracker = StandInBlobTracker(frames)
    discovery = Discovery(DiscoveryConfig(), StandInComponentDetector("red"), tracker, frames.__getitem__)
    shown_before = set()
    for f in range(100):
        report = discovery.after_frame(tracker.step(f))
        if f == 40:
            assert report is not None and report.sightings == 1 and not report.found
        if f < 60:
            shown_before |= set(tracker.result(f).object_ids)
    assert shown_before == set()
    assert [r.frame for r in discovery.records] == [60]


# ---------------------------------------------------------------------- lost and found
def leaving_and_returning(f):
    if f <= 60:
        return (20 + 2 * f, 50)
    if f < 70:
        return None
    return (140 - 2 * (f - 70), 50)


def test_returning_disc_keeps_its_id():
    discs = [Disc(BLUE, 10, still(60, 20)), Disc(RED, 10, leaving_and_returning)]
    out = run_scene(discs, 100, negative="blue", accepted=[1])

    assert out.kinds() == [(1, "reacquired")]
    record = out.discovery.records[0]
    back = next(f for f in range(61, 100) if out.truth[f][1].any())
    assert record.frame == 80
    assert record.first_frame == back  # tracked back to where it came in again
    assert out.follows(1, 1, range(back + 3, 100))
    assert set(out.store[99]) == {1}


def test_a_disc_back_after_the_keep_alive_window_is_a_new_object():
    discs = [Disc(RED, 10, leaving_and_returning)]
    out = run_scene(discs, 110, accepted=[0], keep_alive=10)

    assert out.kinds() == [(2, "discovered")]
    assert out.follows(2, 0, range(85, 110))


def test_two_lost_discs_coming_back_keep_their_own_ids():
    # the same colour: only where each was last seen tells them apart (the bottom one, object 1,
    # comes second in the detector's order, so a tie taken in order would swap them)
    def right(f):  # leaves on the right, comes back on the right
        return (80 + 2 * f, 66) if f < 30 else None if f < 50 else (140 - 2 * (f - 50), 66)

    def left(f):  # leaves on the left, comes back on the left
        return (48 - 2 * f, 30) if f < 30 else None if f < 50 else (-12 + 2 * (f - 50), 30)

    out = run_scene([Disc(RED, 10, right), Disc(RED, 10, left)], 80, accepted=[0, 1])

    assert sorted(out.kinds()) == [(1, "reacquired"), (2, "reacquired")]
    assert out.follows(1, 0, range(65, 80))
    assert out.follows(2, 1, range(65, 80))


def test_crossing_discs_keep_their_ids():
    discs = [Disc(RED, 10, lambda f: (104 - f, 48)), Disc(RED, 10, lambda f: (24 + f, 50))]
    out = run_scene(discs, 80, accepted=[0, 1])

    assert [kind for _, kind in out.kinds() if kind == "discovered"] == []
    assert out.follows(1, 0, range(0, 25)) and out.follows(1, 0, range(60, 80))
    assert out.follows(2, 1, range(0, 25)) and out.follows(2, 1, range(60, 80))


# ---------------------------------------------------------------------- what never becomes an object
def test_blue_is_never_picked_for_red_with_blue_negative():
    discs = [Disc(BLUE, 10, still(40, 40)), Disc(BLUE, 12, entering_at(10, 70))]
    out = run_scene(discs, 80, negative="blue")

    assert out.discovery.records == []
    assert all(report.sightings == 0 for report in out.discovery.reports)
    assert len(out.discovery.reports) == 4  # it did look, on frames 0, 20, 40, 60


@pytest.mark.parametrize(
    "flashes",
    [
        {40: (60, 40)},  # on a check frame
        {45: (60, 40)},  # between checks: never even seen
        {40: (30, 30), 60: (100, 70)},  # two flashes at two checks, in different places
    ],
)
def test_a_one_frame_flash_never_becomes_an_object(flashes):
    discs = [Disc(BLUE, 10, still(90, 30)), Disc(RED, 9, lambda f: flashes.get(f))]
    out = run_scene(discs, 100, negative="blue")

    assert out.discovery.records == []
    assert out.tracker.blobs == {}
    assert all(not masks for masks in out.store.values())
    if len(flashes) == 2:
        assert out.tracker.object_runs  # the second flash was tried and did not track back onto the first


# ---------------------------------------------------------------------- the cap
@pytest.mark.parametrize(
    ("max_objects", "expected"),
    [(1, []), (2, [(2, "discovered")]), (None, [(2, "discovered"), (3, "discovered")])],
)
def test_the_cap_stops_adding_and_says_so(max_objects, expected):
    discs = [
        Disc(RED, 10, still(100, 20)),
        Disc(RED, 10, entering_at(30, 50)),
        Disc(RED, 10, entering_at(30, 80)),
    ]
    out = run_scene(discs, 100, accepted=[0], max_objects=max_objects)

    assert out.kinds() == expected
    assert any(report.capped for report in out.discovery.reports) == (max_objects is not None)


def test_config_refuses_nonsense():
    with pytest.raises(InputError):
        DiscoveryConfig(every=0)
    with pytest.raises(InputError):
        DiscoveryConfig(max_objects=0)
    assert DiscoveryConfig.from_dict(DiscoveryConfig(every=7).to_dict()).every == 7


# ---------------------------------------------------------------------- exemplars
@pytest.mark.parametrize(
    ("text", "positive", "negative", "expected"),
    [
        (30.0, None, None, 30.0),  # no exemplars: the text score
        (30.0, 95.0, None, 37.5),  # like a chosen object: + 0.5·(95 − 80)
        (30.0, 95.0, 90.0, 32.5),  # more like the chosen than the rejected: + 0.5·(95 − 90)
        (30.0, 85.0, 95.0, 20.0),  # more like the rejected: − (95 − 85)
        (30.0, 70.0, 75.0, 30.0),  # both under the floor: only "the same kind of thing"
        (30.0, None, 90.0, 20.0),  # only a rejected one: − (90 − 80)
    ],
)
def test_exemplar_score(text, positive, negative, expected):
    assert exemplar_score(text, positive, negative) == pytest.approx(expected)


def test_removed_object_becomes_a_negative_exemplar():
    bank = ExemplarBank()
    chosen, removed = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    bank.add(1, chosen)
    bank.add(2, removed)
    looks_removed = np.array([0.1, 1.0, 0.0])
    before = bank.score(25.0, looks_removed)
    bank.reject_object(2)
    assert bank.object_ids == [1]
    assert bank.negative_similarity(looks_removed) == pytest.approx(100 * 1.0 / np.hypot(0.1, 1.0), rel=1e-5)
    assert bank.score(25.0, looks_removed) < before - 10
    assert bank.score(25.0, chosen) == pytest.approx(25.0 + 0.5 * (100 - 80))


def test_first_exemplar_is_kept_when_later_ones_rotate():
    bank = ExemplarBank(per_object=3)
    bank.add(1, np.array([1.0, 0.0]))
    for _ in range(5):
        bank.add(1, np.array([0.0, 1.0]))
    assert len(bank.exemplars(1)) == 3
    assert bank.similarity(np.array([1.0, 0.0]), [1]) == pytest.approx(100.0)


# ---------------------------------------------------------------------- matching
@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({(1, 0): 95.0, (2, 0): 90.0, (2, 1): 88.0}, [(1, 0, 95.0), (2, 1, 88.0)]),  # 2 can't take 1's
        ({(1, 0): 95.0, (1, 1): 94.0, (2, 0): 93.0}, [(1, 0, 95.0)]),  # 2's only pair is taken
        ({(1, 0): 80.0}, []),  # under the minimum
    ],
)
def test_assign_exclusive(scores, expected):
    assert assign_exclusive(scores, minimum=85.0) == expected


def test_a_part_of_a_tracked_object_is_matched_not_new():
    tracked = np.zeros((20, 20), bool)
    tracked[2:12, 2:12] = True
    part = np.zeros((20, 20), bool)
    part[3:6, 3:6] = True
    elsewhere = np.zeros((20, 20), bool)
    elsewhere[15:19, 15:19] = True
    result = FrameResult(0, (7,), tracked[None], np.ones(1, np.float32))
    matched, unmatched = match_tracked(
        [Detection(part, 30.0), Detection(elsewhere, 30.0)], result, iou=0.4, cover=0.6
    )
    assert list(matched) == [7] and matched[7][0] == 0
    assert unmatched == [1]


def test_found_record_round_trip_and_description():
    record = FoundRecord(3, "discovered", 168, 27.43, first_frame=150)
    assert FoundRecord.from_dict(record.to_dict()) == record
    assert record.describe(fps=24) == "#3 found at 0:07, score 27.4"


# ---------------------------------------------------------------------- the detector skips what tracked masks cover
def _beside_scene():
    """A big blue disc (tracked: it holds three grid points) and a red one just beside it (new)."""
    frames, truth = render_scene([Disc(BLUE, 30, still(48, 36)), Disc(RED, 14, still(112, 60))], 1)
    return frames[0], truth[0]


def _clip_detector(**options):
    from tests.standins_discovery import StandInCropEncoder, StandInPointProposer
    from tracker.discovery.detector import ClipDetector

    proposer, encoder = StandInPointProposer(), StandInCropEncoder()
    return ClipDetector(encoder, proposer, "red", **options), proposer, encoder


def test_the_detector_decodes_no_grid_point_inside_a_tracked_mask_but_one():
    frame, (blue, red) = _beside_scene()
    detector, proposer, encoder = _clip_detector()
    detections = detector.detect(0, frame, covered=blue[None])

    grid = proposer.grid_points(frame.shape[1], frame.shape[0])
    inside = [tuple(map(float, p)) for p in grid if blue[int(p[1]), int(p[0])]]
    assert inside == [(48.0, 12.0), (48.0, 36.0), (48.0, 60.0)]
    decoded_inside = [p for p in proposer.decoded if blue[int(p[1]), int(p[0])]]
    assert decoded_inside == [(48.0, 36.0)]  # one point per tracked object: the nearest its centre
    assert len(proposer.decoded) == 14 and (detector.points, detector.skipped_points) == (14, 2)
    # the new object beside the tracked one is still found, and the tracked one's own mask is
    # still scored (it teaches the object's exemplars); the part of it under the point is not
    assert any(mask_iou(d.mask, red, empty=0.0) == 1.0 for d in detections)
    assert any(mask_iou(d.mask, blue, empty=0.0) == 1.0 for d in detections)
    assert not any((d.mask & ~blue).sum() == 0 and d.mask.sum() < blue.sum() for d in detections)
    assert detector.skipped_crops == 1 and encoder.crops_seen == detector.crops


def test_the_detector_looks_everywhere_without_covered_masks_or_when_told_not_to_skip():
    frame, (blue, _red) = _beside_scene()
    for covered, options in ((None, {}), (blue[None], {"skip_covered": False})):
        detector, proposer, _ = _clip_detector(**options)
        detector.detect(0, frame, covered=covered)
        assert len(proposer.decoded) == 16 and detector.skipped_points == detector.skipped_crops == 0


def test_a_point_at_the_edge_of_a_tracked_mask_is_still_decoded():
    from tracker.discovery.detector import points_inside

    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    points = np.array([[20, 20], [11, 20], [29, 29], [5, 5]], np.float32)
    assert points_inside(points, mask, 0).tolist() == [True, True, True, False]
    assert points_inside(points, mask, 2).tolist() == [True, False, False, False]


def test_discovery_hands_the_detector_the_tracked_masks_and_keeps_no_masks_of_old_checks():
    seen = []

    class Recording(StandInComponentDetector):
        def detect(self, frame_idx, frame, covered=None):
            seen.append(None if covered is None else covered.shape)
            return super().detect(frame_idx, frame, covered)

    frames, truth = render_scene([Disc(BLUE, 10, still(40, 40))], 9)
    for skip, expected in ((True, (1, HEIGHT, WIDTH)), (False, None)):
        seen.clear()
        tracker = StandInBlobTracker(frames)
        tracker.add_object(1, 0, truth[0][0])
        discovery = Discovery(
            DiscoveryConfig(every=4, skip_covered=skip), Recording("red"), tracker, frames.__getitem__
        )
        for f in range(9):
            discovery.after_frame(tracker.step(f))
        assert seen == [expected] * 3
        assert [r.result.masks.size for r in discovery.reports[:-1]] == [0, 0]
        assert discovery.reports[-1].result.masks.any() and discovery.reports[0].result.object_ids == (1,)
