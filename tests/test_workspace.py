"""Workspace: the object the CLI and the app drive. Real SAM 2 / CLIP with random weights, small sizes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.synthetic import make_video
from tracker.errors import InputError
from tracker.export import write_png_masks
from tracker.models import ModelHub
from tracker.results import ResultStore
from tracker.settings import Settings
from tracker.types import FrameResult
from tracker.workspace import Workspace

pytestmark = pytest.mark.slow

W, H, N = 160, 128, 16


@pytest.fixture(scope="module")
def hub() -> ModelHub:
    return ModelHub()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("ws") / "shapes.mp4"
    truth = make_video(path, num_frames=N, width=W, height=H, fps=8)
    return path, truth


def _settings(**kw) -> Settings:
    base = dict(random_weights=True, device="cpu", image_size=256, top_frames=1, offline=True)
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def ws(video, hub, tmp_path):
    with Workspace.open(video[0], hub, _settings(), tmp_path / "work") as workspace:
        yield workspace


def _center(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def test_open_resolves_preset(ws):
    assert ws.settings.preset == "balanced"  # CPU default
    assert ws.settings.image_size == 256  # explicit beats the preset
    assert ws.settings.sam2_model == "tiny"
    assert (ws.info.width, ws.info.height, ws.info.num_frames) == (W, H, N)


def test_click_undo_redo(ws, video):
    disc = video[1][5][0]
    obj = ws.add_object("disc")
    first = ws.add_click(obj.object_id, 5, *_center(disc))
    assert first.frame_idx == 5 and first.object_ids == (obj.object_id,)
    assert first.masks.shape == (1, H, W) and first.masks.dtype == bool
    ws.add_click(obj.object_id, 5, 5, 5, positive=False)
    assert [p.labels for p in ws.prompts()] == [[1, 0]]
    assert ws.undo()
    assert [p.labels for p in ws.prompts()] == [[1]]
    again = ws.result_at(5)
    assert np.array_equal(again.masks, first.masks)  # replay reproduces SAM 2's answer exactly
    assert ws.redo()
    assert [p.labels for p in ws.prompts()] == [[1, 0]]
    assert not ws.redo()


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda ws, oid: ws.add_click(oid, 0, W + 5, 3), "outside"),
        (lambda ws, oid: ws.set_box(oid, 0, (10, 10, 10, 40)), "no area"),
        (lambda ws, oid: ws.set_mask(oid, 0, np.zeros((H, W), bool)), "empty"),
        (lambda ws, oid: ws.add_click(oid, 0, 10, 10, positive=False), "negative"),
        (lambda ws, oid: ws.add_click(oid, N + 3, 10, 10), "outside the video"),
        (lambda ws, oid: ws.add_click(oid + 7, 0, 10, 10), "no object"),
    ],
)
def test_bad_prompts_change_nothing(ws, action, message):
    obj = ws.add_object()
    before = len(ws.history())
    with pytest.raises(InputError, match=message):
        action(ws, obj.object_id)
    assert len(ws.history()) == before


def test_track_both_ways_from_middle(ws, video, tmp_path):
    obj = ws.add_object("disc")
    start = 6
    ws.add_click(obj.object_id, start, *_center(video[1][start][0]))
    events = list(ws.track())
    tracked = [e.result.frame_idx for e in events if not e.replay]
    assert tracked == list(range(start - 1, -1, -1)) + list(range(start, N))  # the backward leg first
    assert events[-1].done == events[-1].total == N
    # the backward leg's frames come again just before the forward leg: the overlay's frame order
    assert [e.result.frame_idx for e in events if e.replay] == list(range(start))
    assert [e.result.frame_idx for e in events if e.replay or e.direction == "forward"] == list(range(N))
    assert sorted(ws.store.frames()) == list(range(N))
    from tracker.video import probe

    overlay = probe(ws.last_overlay)
    assert (overlay.num_frames, overlay.width, overlay.height) == (N, W, H)
    written = ws.export(tmp_path / "out")
    assert {"coco", "masks", "manifest", "zip"} <= set(written)


def test_stop_keeps_what_was_done_then_track_again(ws, video):
    obj = ws.add_object()
    ws.add_click(obj.object_id, 0, *_center(video[1][0][0]))
    cancel = threading.Event()
    seen = []
    for event in ws.track(cancel=cancel):
        seen.append(event.result.frame_idx)
        if len(seen) == 4:
            cancel.set()
    assert len(seen) == 4  # stops within the frame
    assert sorted(ws.store.frames()) == seen
    assert ws.last_overlay is not None and ws.last_overlay.exists()  # partial overlay kept
    assert len(list(ws.track())) == N


def test_retrack_stops_where_results_agree_and_touches_only_the_corrected_object(ws, video):
    truth = video[1]
    disc = ws.add_object("disc")
    square = ws.add_object("square")
    ws.add_click(disc.object_id, 0, *_center(truth[0][0]))
    ws.add_click(square.object_id, 0, *_center(truth[0][1]))
    list(ws.track())
    before = {f: {o: ws.store.rle(f, o) for o in (1, 2)} for f in ws.store.frames()}
    corrected = 8
    ws.add_click(disc.object_id, corrected, *_center(truth[corrected][0]))
    # agree_iou=0 makes every frame agree, so each direction stops after agree_frames frames
    list(ws.retrack(corrected, [disc.object_id], agree_iou=0.0, agree_frames=3))
    rewritten = sorted(ws.last_retrack_frames)
    assert rewritten == [5, 6, 7, 8, 9, 10, 11]  # 8 itself + 3 forward, 3 backward
    assert len(rewritten) < N
    for f in range(N):
        assert ws.store.rle(f, square.object_id) == before[f][2], f"square changed on frame {f}"
        if f not in rewritten:
            assert ws.store.rle(f, disc.object_id) == before[f][1], f"disc changed outside the span on {f}"


def test_retrack_runs_on_until_agreement(ws, video, monkeypatch):
    """With a named stand-in for the session's output, the stop rule is exact."""
    truth = video[1]
    obj = ws.add_object()
    ws.add_click(obj.object_id, 0, *_center(truth[0][0]))
    list(ws.track())
    corrected = 4
    ws.add_click(obj.object_id, corrected, *_center(truth[corrected][0]))

    def standin_propagate(start_frame=None, direction="forward", cancel=None, max_frames=None, **_):
        step = 1 if direction == "forward" else -1
        f = start_frame
        while 0 <= f < N:
            old = ws.store.mask(f, obj.object_id)
            # differs from the old masks within 2 frames of the correction, agrees after
            mask = ~old if abs(f - corrected) <= 2 else old.copy()
            yield FrameResult(f, (obj.object_id,), mask[None], np.ones(1, np.float32))
            f += step

    monkeypatch.setattr(ws.session, "propagate", standin_propagate)
    list(ws.retrack(corrected, agree_frames=2))
    assert sorted(ws.last_retrack_frames) == [0, 1, 2, 3, 4, 5, 6, 7, 8]


def test_import_png_masks_and_flags_on_planted_faults(ws, tmp_path):
    # a disc that teleports at 6 and vanishes at 10..11
    store = ResultStore(W, H, N)
    masks = []
    yy, xx = np.mgrid[0:H, 0:W]
    for f in range(N):
        cx = 30 + 2 * f + (50 if f >= 6 else 0)
        mask = (xx - cx) ** 2 + (yy - 60) ** 2 <= 12**2
        if f in (10, 11):
            mask[:] = False
        masks.append(mask)
        store.put(FrameResult(f, (1,), mask[None], np.ones(1, np.float32)))
    folder = tmp_path / "gt"
    write_png_masks(store, folder)
    created = ws.import_annotations(folder)
    assert [o.object_id for o in created] == [1]
    for f in range(N):
        assert np.array_equal(ws.store.mask(f, 1), masks[f]), f
    got = {(fl.frame, fl.reason) for fl in ws.flags(with_clip=False)}
    assert got == {(6, "too_fast"), (10, "vanished"), (12, "reappeared")}


class _StopLoading(Exception):
    pass


class RecordingHub:
    """A stand-in hub: hands out stand-in models and records how SAM 1 was asked for."""

    def __init__(self) -> None:
        self.sam1_calls: list[tuple[tuple, dict]] = []

    def clip(self, *args, **kwargs) -> object:
        return object()

    def sam2(self, *args, **kwargs) -> object:
        return object()

    def sam1(self, *args, **kwargs) -> object:
        self.sam1_calls.append((args, kwargs))
        raise _StopLoading

    def lock_for(self, model) -> threading.RLock:
        return threading.RLock()


def test_find_loads_sam1_from_the_settings_checkpoint(video, tmp_path):
    mine = tmp_path / "my_sam1.pth"
    hub = RecordingHub()
    settings = _settings(random_weights=False, mask_generator="sam1-auto", sam1_model="vit_l", sam1_checkpoint=mine)
    with Workspace.open(video[0], hub, settings, tmp_path / "work") as workspace:
        with pytest.raises(_StopLoading):
            list(workspace.find_candidates("red disc"))
    [(args, kwargs)] = hub.sam1_calls
    assert args == ("vit_l",)
    assert kwargs["checkpoint"] == mine
