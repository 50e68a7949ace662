"""tracker.render: overlay drawing, motion trails and the H.264 overlay writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tracker.errors import VideoError
from tracker.render import NEGATIVE_COLOR, POSITIVE_COLOR, OverlayWriter, TrailHistory, draw_overlay
from tracker.types import FrameResult, TrackedObject, color_for
from tracker.video import VideoReader, probe

H, W = 120, 160
OBJECTS = {1: TrackedObject(1, "dog", (230, 25, 75)), 2: TrackedObject(2, "ball", (60, 180, 75))}


def textured_frame() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([xx % 200, yy * 2 % 200, (xx + yy) % 200], axis=-1).astype(np.uint8)


def box_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def result_of(*masks: np.ndarray, ids: tuple[int, ...] = (1, 2), frame_idx: int = 0) -> FrameResult:
    return FrameResult(frame_idx, ids[: len(masks)], np.stack(masks), np.ones(len(masks), np.float32))


def blend(pixel: np.ndarray, color: tuple[int, int, int], alpha: float) -> np.ndarray:
    return pixel * (1 - alpha) + np.asarray(color) * alpha


# ---------------------------------------------------------------------------------- draw_overlay


def test_input_frame_is_not_modified():
    frame = textured_frame()
    before = frame.copy()
    frame.flags.writeable = False  # frames from VideoReader.get are read-only
    out = draw_overlay(
        frame,
        result_of(box_mask(40, 40, 80, 90)),
        OBJECTS,
        trails={1: [(10, 10), (50, 50)]},
        points=[(60, 60, 1)],
    )
    assert np.array_equal(frame, before)
    assert out is not frame and out.flags.writeable and not np.array_equal(out, frame)


def test_no_result_returns_an_equal_copy():
    frame = textured_frame()
    out = draw_overlay(frame, None, OBJECTS)
    assert out is not frame and np.array_equal(out, frame)


@pytest.mark.parametrize("alpha", [0.0, 0.45, 1.0])
def test_fill_outline_and_outside(alpha):
    frame = textured_frame()
    mask = box_mask(40, 50, 100, 110)
    out = draw_overlay(frame, result_of(mask), OBJECTS, alpha=alpha)
    color = OBJECTS[1].color
    inner = (80, 70)  # (y, x) well inside: blended fill
    assert np.abs(out[inner].astype(float) - blend(frame[inner], color, alpha)).max() <= 1.5
    for edge in [(50, 70), (51, 70), (80, 40), (80, 41), (109, 99)]:  # the 2-px outline is solid
        assert tuple(out[edge]) == color
    assert not np.array_equal(out[80, 42], np.asarray(color)) or alpha == 1.0  # 3rd pixel in is fill
    assert np.array_equal(out[115:, :], frame[115:, :])  # below the object: untouched
    assert np.array_equal(out[:, :35], frame[:, :35])  # left of it (the label sits above, from x=40)


def test_label_is_drawn_above_the_box_or_inside_at_the_top():
    frame = np.full((H, W, 3), 128, np.uint8)
    out = draw_overlay(frame, result_of(box_mask(40, 60, 100, 110)), OBJECTS)
    above = out[35:60, 40:100]
    assert (above.max(axis=-1) > 240).any(), "white label text above the box"
    assert (above.max(axis=-1) < 60).any(), "dark label background above the box"
    at_top = draw_overlay(frame, result_of(box_mask(40, 0, 100, 50)), OBJECTS)
    assert (at_top[0:20, 40:100].max(axis=-1) > 240).any()


def test_label_falls_back_for_unknown_objects():
    frame = np.full((H, W, 3), 128, np.uint8)
    out = draw_overlay(frame, result_of(box_mask(40, 60, 100, 110), ids=(7,)), {})
    assert tuple(out[60, 70]) == color_for(7)


def test_empty_mask_draws_nothing():
    frame = textured_frame()
    out = draw_overlay(frame, result_of(np.zeros((H, W), bool)), OBJECTS)
    assert np.array_equal(out, frame)


@pytest.mark.parametrize(
    ("label", "color"),
    [(1, POSITIVE_COLOR), (0, NEGATIVE_COLOR)],
    ids=["positive-green", "negative-red"],
)
def test_points(label, color):
    frame = np.full((H, W, 3), 128, np.uint8)
    out = draw_overlay(frame, None, OBJECTS, points=[(80, 60, label)])
    assert tuple(out[60, 80]) == color
    ring = out[50:71, 70:91].reshape(-1, 3)
    assert (ring == 255).all(axis=1).any(), "white border"
    assert np.array_equal(out[:40], frame[:40])


def test_points_outside_the_frame_are_clipped():
    frame = textured_frame()
    out = draw_overlay(frame, None, OBJECTS, points=[(-50, -50, 1), (W + 50, 10, 0), (0, 0, 1)])
    assert tuple(out[0, 0]) == POSITIVE_COLOR


def test_trails_fade_and_break_at_gaps():
    frame = np.zeros((H, W, 3), np.uint8)
    trail = [(10.0, 20.0), (40.0, 20.0), None, (100.0, 20.0), (140.0, 20.0)]
    out = draw_overlay(frame, None, OBJECTS, trails={1: trail})
    red = out[..., 0].astype(int)
    assert red[20, 25] > 0 and red[20, 120] > 0, "segments on both sides of the gap"
    assert red[15:26, 55:85].max() == 0, "no segment across the gap"
    assert red[20, 120] > red[20, 25], "newer segments are more opaque"


def test_size_mismatch_and_bad_frames_are_rejected():
    with pytest.raises(ValueError, match="masks are"):
        draw_overlay(np.zeros((H + 2, W, 3), np.uint8), result_of(box_mask(1, 1, 5, 5)), OBJECTS)
    with pytest.raises(ValueError, match="uint8"):
        draw_overlay(np.zeros((H, W, 3), np.float32), None, OBJECTS)
    with pytest.raises(ValueError, match="uint8"):
        draw_overlay(np.zeros((H, W), np.uint8), None, OBJECTS)


def test_object_colours_stay_apart():
    frame = np.full((H, W, 3), 100, np.uint8)
    out = draw_overlay(
        frame, result_of(box_mask(10, 40, 60, 110), box_mask(90, 40, 150, 110)), OBJECTS, alpha=1.0
    )
    assert tuple(out[80, 35]) == OBJECTS[1].color and tuple(out[80, 120]) == OBJECTS[2].color


# ---------------------------------------------------------------------------------- TrailHistory


def test_trail_history_centroids_gaps_and_resets():
    history = TrailHistory(length=3)
    history.update(result_of(box_mask(0, 0, 10, 20), box_mask(100, 100, 110, 110), frame_idx=0))
    history.update(result_of(box_mask(10, 0, 20, 20), np.zeros((H, W), bool), frame_idx=1))
    trails = history.trails()
    assert trails[1] == [(4.5, 9.5), (14.5, 9.5)]
    assert trails[2] == [(104.5, 104.5), None]
    history.update(result_of(box_mask(20, 0, 30, 20), ids=(1,), frame_idx=2))  # object 2 absent
    history.update(result_of(box_mask(30, 0, 40, 20), ids=(1,), frame_idx=3))
    trails = history.trails()
    assert trails[1] == [(14.5, 9.5), (24.5, 9.5), (34.5, 9.5)]  # only the last 3
    assert 2 not in trails  # nothing visible left in its window
    history.update(result_of(box_mask(0, 0, 10, 20), ids=(1,), frame_idx=1))  # went back: start over
    assert history.trails() == {1: [(4.5, 9.5)]}


# ---------------------------------------------------------------------------------- OverlayWriter


def _frames(count: int, width: int = W, height: int = H):
    for i in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, : width // 2] = (200, 40, 40)
        frame[:, width // 2 :] = (40, 40, 200)
        frame[: 4 + i, :4] = 255  # changes every frame
        yield frame


def _leftovers(folder: Path, final: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != final)


@pytest.mark.parametrize("threaded", [False, True], ids=["direct", "threaded"])
def test_writer_output_plays_back(tmp_path, threaded):
    path = tmp_path / "out" / "overlay.mp4"
    with OverlayWriter(path, fps=12.5, size=(W, H), threaded=threaded) as writer:
        for frame in _frames(10):
            writer.write(frame)
        assert writer.frames_written == 10
    assert path.exists() and _leftovers(path.parent, path.name) == []
    info = probe(path)
    assert (info.num_frames, info.width, info.height, info.codec) == (10, W, H, "h264")
    assert info.fps == pytest.approx(12.5)
    with VideoReader(info) as reader:
        frame = reader.get(3)
    assert np.abs(frame[H // 2, W // 4].astype(int) - (200, 40, 40)).max() < 12
    assert np.abs(frame[H // 2, 3 * W // 4].astype(int) - (40, 40, 200)).max() < 12


def test_writer_pads_odd_sizes(tmp_path):
    path = tmp_path / "odd.mp4"
    with OverlayWriter(path, fps=24, size=(W - 1, H - 1)) as writer:
        for frame in _frames(3, W - 1, H - 1):
            writer.write(frame)
    info = probe(path)
    assert (info.num_frames, info.width, info.height) == (3, W, H)


def test_abort_leaves_nothing_and_keeps_an_existing_file(tmp_path):
    path = tmp_path / "overlay.mp4"
    path.write_bytes(b"previous")
    writer = OverlayWriter(path, fps=24, size=(W, H), threaded=True)
    for frame in _frames(5):
        writer.write(frame)
    writer.abort()
    writer.abort()  # twice is fine
    assert path.read_bytes() == b"previous"
    assert _leftovers(tmp_path, path.name) == []


def test_exception_in_with_block_aborts(tmp_path):
    path = tmp_path / "overlay.mp4"
    with pytest.raises(KeyError), OverlayWriter(path, fps=24, size=(W, H)) as writer:
        writer.write(next(_frames(1)))
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((H, W + 2, 3), np.uint8), "expected"),
        (np.zeros((H, W, 3), np.float32), "expected"),
        (np.zeros((H, W, 4), np.uint8), "expected"),
    ],
)
def test_writer_rejects_wrong_frames(tmp_path, frame, message):
    with OverlayWriter(tmp_path / "o.mp4", fps=24, size=(W, H)) as writer:
        with pytest.raises(ValueError, match=message):
            writer.write(frame)
        writer.write(next(_frames(1)))
    assert probe(tmp_path / "o.mp4").num_frames == 1


def test_close_without_frames_saves_nothing(tmp_path):
    writer = OverlayWriter(tmp_path / "o.mp4", fps=24, size=(W, H))
    with pytest.raises(ValueError, match="no frames"):
        writer.close()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("threaded", [False, True], ids=["direct", "threaded"])
def test_encoder_failure_is_reported(tmp_path, threaded):
    writer = OverlayWriter(tmp_path / "o.mp4", fps=24, size=(W, H), threaded=threaded)
    writer._process.kill()  # ffmpeg dies (out of memory, disk full…)
    writer._process.wait()
    with pytest.raises(VideoError, match="failed"):
        for frame in _frames(40):
            writer.write(frame)
        writer.close()
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        writer.write(next(_frames(1)))


def _one_by_one(frame: np.ndarray, result: FrameResult, objects) -> np.ndarray:
    """draw_overlay with each object drawn on its own (the per-object path), for comparison."""
    out = frame
    for index in range(len(result.object_ids)):
        single = FrameResult(
            result.frame_idx,
            result.object_ids[index : index + 1],
            result.masks[index : index + 1],
            result.scores[index : index + 1],
        )
        out = draw_overlay(out, single, objects)
    return out


@pytest.mark.parametrize(
    ("kind", "one_pass"),
    [("noise", True), ("blocks", True), ("blobs", False), ("touching", False), ("overlapping", False)],
)
def test_all_objects_in_one_pass_equal_one_by_one(kind, one_pass, monkeypatch):
    """Non-overlapping masks are tinted and outlined in one pass; overlapping ones fall back.

    Labels are drawn after every fill, so drawing objects one at a time (each on the previous
    overlay) gives the same pixels only where no label is drawn: compare with labels off-frame.
    """
    from tracker.masks import stack_stats

    rng = np.random.default_rng(3)
    height, width = 60, 80
    frame = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    masks = np.zeros((4, height, width), bool)
    if kind == "noise":  # random weights' masks: every object everywhere, never overlapping
        owner = rng.integers(0, 5, (height, width))
        masks = owner[None] == np.arange(1, 5)[:, None, None]
    elif kind == "blocks":  # 6×6 blocks dealt to the objects: every box spans the frame, solid insides
        owner = np.kron(rng.integers(0, 5, (10, 14)), np.ones((6, 6), int))[:height, :width]
        masks = owner[None] == np.arange(1, 5)[:, None, None]
    elif kind == "blobs":
        for k, (y, x) in enumerate([(10, 10), (10, 50), (40, 15), (45, 60)]):
            masks[k, y : y + 12, x : x + 15] = True
    else:  # side by side, touching (or one pixel column shared)
        for k in range(4):
            masks[k, 20:50, 20 * k : 20 * k + 20 + (1 if kind == "overlapping" else 0)] = True
    result = FrameResult(0, (1, 2, 3, 4), masks, np.ones(4, np.float32))
    objects = {i: TrackedObject(i, "", color_for(i)) for i in range(1, 5)}
    import tracker.render as render

    monkeypatch.setattr(render, "_label_patch", lambda *args: np.zeros((1, 1, 4), np.uint8))  # no labels
    taken = []
    real = render._fill_and_outline_all
    monkeypatch.setattr(render, "_fill_and_outline_all", lambda *args: taken.append(real(*args)) or taken[-1])
    together = draw_overlay(frame, result, objects, stats=stack_stats(masks))
    assert np.array_equal(together, _one_by_one(frame, result, objects))
    assert taken[0] is one_pass
    assert np.array_equal(draw_overlay(frame, result, objects), together)  # boxes found here or given
