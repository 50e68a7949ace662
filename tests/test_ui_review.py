"""The review loop's handlers (ui/review.py) called directly, around the stand-in workspace (fast).

Flags come from the library's real detectors (:mod:`tracker.flags`) over the stand-in's masks;
a planted fault (annotations where a disc teleports at one frame) gives a flag at a known frame.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from tests.standin_workspace import standin_services
from tracker.export import write_coco, write_png_masks, write_ytvis, write_zip
from tracker.flags import ABSENT, FLAGGED, PRESENT
from tracker.results import ResultStore
from tracker.types import FrameResult, TrackedObject, VideoInfo
from ui import review
from ui.app import build_demo, launch_style
from ui.handlers import Handlers
from ui.review import ReviewLoop, render_timeline, timeline_hit
from ui.state import SessionStore, UISession

W, H, N = 160, 120, 12
JUMP_AT = 6


@pytest.fixture
def rv(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    loop = ReviewLoop(Handlers(standin_services(tmp_path / "sessions"), store))
    yield loop
    store.close_all()


def select(index) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": None})


def planted_masks(width: int, height: int, num_frames: int, jump_at: int) -> ResultStore:
    """One disc moving right a few pixels a frame that teleports a third of the width at ``jump_at``."""
    store = ResultStore(width, height, num_frames)
    yy, xx = np.mgrid[0:height, 0:width]
    radius = max(4, min(width, height) // 10)
    for f in range(num_frames):
        cx = width * 0.15 + f * width / 80 + (width / 3 if f >= jump_at else 0)
        mask = (xx - cx) ** 2 + (yy - height / 2) ** 2 <= radius**2
        store.put(FrameResult(f, (1,), mask[None], np.ones(1, np.float32)))
    return store


def planted_zip(folder: Path, width: int, height: int, num_frames: int, jump_at: int) -> Path:
    """A zip of DAVIS-style PNG masks (``masks/00000.png`` …) with the planted teleport."""
    store = planted_masks(width, height, num_frames, jump_at)
    write_png_masks(store, folder / "masks")
    return write_zip(folder, [folder / "masks"], folder / "planted.zip")


def planted_json(folder: Path, kind: str) -> Path:
    store = planted_masks(W, H, N, JUMP_AT)
    info = VideoInfo(Path("clip.mp4"), W, H, 12.0, N, W, H)
    objects = {1: TrackedObject(1, "disc", (230, 25, 75))}
    writer = write_coco if kind == "coco" else write_ytvis
    return writer(store, info, objects, folder / f"planted-{kind}.json")


def opened(rv: ReviewLoop, small_video: Path) -> UISession:
    session, _ = rv.handlers.on_video(None, str(small_video), "balanced")
    return session


def tracked(rv: ReviewLoop, small_video: Path) -> UISession:
    session = opened(rv, small_video)
    list(rv.handlers.find(session, str(small_video), "red disc", "", "balanced"))
    rv.handlers.pick_candidate(session, select(0))
    list(rv.handlers.track(session, "both"))
    rv.check(session)
    return session


def imported(rv: ReviewLoop, small_video: Path, tmp_path: Path) -> UISession:
    session = tracked(rv, small_video)
    view = rv.import_annotations(session, str(planted_zip(tmp_path, W, H, N, JUMP_AT)))
    assert "Imported" in view.status
    rv.check(session)
    return session


# -- the strip ----------------------------------------------------------------------------------
def test_timeline_strip_has_one_band_per_object():
    codes = np.array([PRESENT] * 5 + [FLAGGED] + [PRESENT] * 4 + [ABSENT] * 2, np.uint8)
    rows = [(1, (0, 130, 200), codes), (2, (60, 180, 75), np.full(12, PRESENT, np.uint8))]
    image = render_timeline(rows, current=3)
    one = render_timeline(rows[:1])
    assert image.dtype == np.uint8 and image.shape[1] == review.STRIP_WIDTH and image.shape[2] == 3
    assert image.shape[0] - one.shape[0] == review.MARKER + review.ROW_HEIGHT + review.ROW_GAP
    band = review._row_top(0) + review.ROW_HEIGHT // 2
    column = review.LABEL_WIDTH + int((1.5 / 12) * (review.STRIP_WIDTH - review.LABEL_WIDTH - review.PAD))

    def at(frame: int) -> tuple[int, ...]:
        x = review.LABEL_WIDTH + int(
            ((frame + 0.5) / 12) * (review.STRIP_WIDTH - review.LABEL_WIDTH - review.PAD)
        )
        return tuple(image[band, x])

    assert tuple(image[band, column]) == (0, 130, 200)  # present: the object's colour
    assert at(5) == review.FLAG_COLOR  # flagged: red
    assert at(11) == review.ABSENT_COLOR  # absent: grey
    assert at(3) == review.CURSOR_COLOR  # the current frame


def test_long_videos_keep_single_flagged_frames_visible():
    codes = np.full(5000, PRESENT, np.uint8)
    codes[2345] = FLAGGED
    image = render_timeline([(1, (0, 130, 200), codes)])
    band = image[review._row_top(0) + 5]
    assert (band == review.FLAG_COLOR).all(axis=1).sum() >= 2


@pytest.mark.parametrize(
    ("x", "y", "frame", "row"),
    [
        (0, 10, 0, 0),  # on the label: the first frame
        (review.LABEL_WIDTH, 20, 0, 0),
        (review.STRIP_WIDTH - 1, 20, N - 1, 0),
        (review.LABEL_WIDTH + (review.STRIP_WIDTH - review.LABEL_WIDTH - review.PAD) * 6.5 / N, 50, 6, 1),
        (800, 500, 5, None),  # below the last row: a frame, no object
    ],
)
def test_a_click_on_the_strip_names_a_frame_and_a_row(x, y, frame, row):
    assert timeline_hit(x, y, N, 2) == (frame, row)


# -- after a run ---------------------------------------------------------------------------------
def test_check_after_tracking_shows_the_timeline(rv, small_video):
    session = tracked(rv, small_video)
    view = rv.check(session)
    image = view.timeline["value"]
    assert view.timeline["visible"] and image.shape == render_timeline([(1, (0, 0, 0), np.zeros(N))]).shape
    assert view.slider["maximum"] == N - 1
    assert "Nothing flagged" in view.flags  # the stand-in's smooth tracks raise no flag
    assert view.flag_filter["choices"][0] == ("flags of every object", review.EVERY_OBJECT)
    assert ("flags of 1 · red disc", 1) in view.flag_filter["choices"]


def test_before_anything_is_tracked_the_loop_is_quiet(rv, small_video):
    session = opened(rv, small_video)
    view = rv.review_view(session)
    assert view.timeline["visible"] is False and view.flags == ""
    assert all(v == gr.skip() for v in rv.next_frame(session, 0))
    with pytest.raises(gr.Error):
        rv.next_flag(session, 0, 0)


# -- flagged frames ------------------------------------------------------------------------------
def test_next_and_previous_flagged_jump_and_say_why(rv, small_video, tmp_path):
    session = imported(rv, small_video, tmp_path)
    flags = session.review.flags
    assert [(f.frame, f.object_id, f.reason) for f in flags] == [(JUMP_AT, 2, "too_fast")]
    view = rv.next_flag(session, 0, review.EVERY_OBJECT)
    assert view.slider["value"] == JUMP_AT
    assert (
        f"Frame {JUMP_AT} is flagged" in view.flags and "jumped" in view.flags and "imported 1" in view.flags
    )
    assert view.frame.shape == (480, 640, 3) and f"Frame {JUMP_AT}" in view.status
    row = review._row_top(1) + 5
    assert (view.timeline["value"][row] == review.FLAG_COLOR).all(axis=1).any()  # object 2's band
    assert rv.previous_flag(session, N - 1, 2).slider["value"] == JUMP_AT
    # nothing further that way: the view stays where it is
    assert all(v == gr.skip() for v in rv.next_flag(session, JUMP_AT, review.EVERY_OBJECT))
    assert all(v == gr.skip() for v in rv.next_flag(session, 0, 1))  # object 1 has no flag


def test_moving_frame_by_frame_and_by_the_strip(rv, small_video, tmp_path):
    session = imported(rv, small_video, tmp_path)
    assert rv.next_frame(session, 3).slider["value"] == 4
    assert rv.previous_frame(session, 0).slider["value"] == 0  # stays in the video
    assert rv.next_frame(session, N - 1).slider["value"] == N - 1
    x = review.LABEL_WIDTH + (review.STRIP_WIDTH - review.LABEL_WIDTH - review.PAD) * (JUMP_AT + 0.5) / N
    y = review._row_top(1) + 4
    view = rv.timeline_select(session, select([x, y]))
    assert view.slider["value"] == JUMP_AT and session.object_id == 2  # the row's object takes the clicks
    image, status, strip, flags = rv.review_frame(session, JUMP_AT)
    assert "is flagged" in flags and strip["visible"]


def test_removed_objects_take_their_flags_along(rv, small_video, tmp_path):
    session = imported(rv, small_video, tmp_path)
    session.object_id = 2
    rv.handlers.remove_object(session)
    assert all(v == gr.skip() for v in rv.next_flag(session, 0, review.EVERY_OBJECT))
    assert "Nothing flagged" in rv.review_view(session).flags


# -- fixing and re-tracking ----------------------------------------------------------------------
def test_a_click_on_the_review_picture_fixes_that_frame(rv, small_video):
    session = tracked(rv, small_video)
    view = rv.click(session, 9, select([400, 200]))
    assert session.frame_idx == 9 and view.slider["value"] == 9
    (prompt,) = [p for p in session.workspace.prompts() if p.frame_idx == 9]
    assert prompt.points == [(100.0, 50.0)] and prompt.labels == [1]  # shown 4× larger
    rv.set_mode(session, "negative")
    rv.click(session, 9, select([400, 220]))
    assert [p for p in session.workspace.prompts() if p.frame_idx == 9][0].labels == [1, 0]
    rv.undo(session)
    assert [p for p in session.workspace.prompts() if p.frame_idx == 9][0].labels == [1]
    rv.redo(session)
    assert [p for p in session.workspace.prompts() if p.frame_idx == 9][0].labels == [1, 0]


def test_click_mode_is_shared_with_step_3(rv, small_video):
    session = opened(rv, small_video)
    _, status, step3 = rv.set_mode(session, "negative")
    assert session.mode == "negative" and step3["value"] == "negative" and "not object" in status
    assert rv.mirror_mode("box")["value"] == "box"


def test_retrack_reports_fewer_frames_than_the_video(rv, small_video):
    session = tracked(rv, small_video)
    ws = session.workspace
    before = {f: ws.store.mask(f, 1).copy() for f in range(N)}
    rv.click(session, 9, select([300, 240]))
    rv.agree_frames = 2  # the stand-in's frames 0–4 stay nearer the first prompt (frame 0): they agree
    views = list(rv.retrack(session))
    final = views[-1]
    rewritten = sorted(set(ws.last_retrack_frames))
    assert rewritten == list(range(3, N))  # 9–11 forward; 8 … 5 differ, 4 and 3 agree: stop
    assert (
        f"Re-tracked **{len(rewritten)} of {N} frames**" in final.status and "around frame 9" in final.status
    )
    for f in set(range(N)) - set(rewritten):
        assert np.array_equal(ws.store.mask(f, 1), before[f])
    assert not np.array_equal(ws.store.mask(9, 1), before[9])
    assert final.slider["value"] == 9 and final.timeline["visible"] and not session.tracking
    assert session.review is not None and session.review.workspace is ws  # flags computed again


def test_retrack_needs_a_tracked_video(rv, small_video):
    session = opened(rv, small_video)
    rv.handlers.click(session, select([80, 60]))
    with pytest.raises(gr.Error) as raised:
        list(rv.retrack(session))
    assert "Track" in raised.value.message


def test_downloads_carry_the_flags(rv, small_video, tmp_path):
    session = imported(rv, small_video, tmp_path)
    view = rv.prepare_downloads(session)
    names = [Path(p).name for p in view.files]
    assert names[0] == "annotations.zip"
    assert names.index("flags.csv") < names.index("flags.json") < names.index("project.json")
    assert "1 flagged frame" in view.status
    members = zipfile.ZipFile(view.zip_button["value"]).namelist()
    assert {"flags.json", "flags.csv", "coco.json", "trajectories.csv"} <= set(members)
    assert "project.json" not in members  # the zip holds what it held, plus the flags
    written = json.loads(Path(next(p for p in view.files if p.endswith("flags.json"))).read_text())
    assert [(f["frame"], f["reason"]) for f in written["flags"]] == [(JUMP_AT, "too_fast")]


# -- importing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["png-zip", "coco", "ytvis"])
def test_import_round_trip(rv, small_video, tmp_path, kind):
    session = opened(rv, small_video)
    source = planted_zip(tmp_path, W, H, N, JUMP_AT) if kind == "png-zip" else planted_json(tmp_path, kind)
    view = rv.import_annotations(session, str(source))
    ws = session.workspace
    assert list(ws.objects) == [1] and session.object_id == 1 and "Imported" in view.status
    expected = planted_masks(W, H, N, JUMP_AT)
    for f in range(N):
        assert np.array_equal(ws.store.mask(f, 1), expected.mask(f, 1)), f
    checked = rv.check(session)
    assert checked.timeline["visible"] and checked.frame is not None
    assert [(f.frame, f.reason) for f in session.review.flags] == [(JUMP_AT, "too_fast")]
    assert rv.next_flag(session, 0, review.EVERY_OBJECT).slider["value"] == JUMP_AT


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"not json", "bad.json", "not a readable JSON"),
        (b"PK not really a zip", "bad.zip", "neither a folder of PNG masks nor a zip"),
    ],
)
def test_a_bad_import_is_one_sentence(rv, small_video, tmp_path, content, name, message):
    session = opened(rv, small_video)
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(gr.Error) as raised:
        rv.import_annotations(session, str(path))
    assert message in raised.value.message and "Traceback" not in raised.value.message
    assert session.workspace.objects == {}


def test_import_needs_the_video_first(rv, tmp_path):
    with pytest.raises(gr.Error) as raised:
        rv.import_annotations(None, str(planted_zip(tmp_path, W, H, N, JUMP_AT)))
    assert "Upload the video" in raised.value.message


# -- the page ------------------------------------------------------------------------------------
LOOP_IDS = [
    "review-timeline", "review-flags", "next-flag-btn", "prev-flag-btn", "review-next-frame-btn",
    "review-prev-frame-btn", "flag-filter", "review-click-mode", "review-undo-btn", "review-redo-btn",
    "retrack-btn", "refine-next-frame-btn", "refine-prev-frame-btn", "import-annotations", "undo-btn", "redo-btn",
]  # fmt: skip


def test_page_has_the_loop_and_its_keys(tmp_path):
    demo = build_demo(standin_services(tmp_path))
    ids = {c["props"].get("elem_id") for c in demo.config["components"]}
    assert all(i in ids for i in LOOP_IDS), [i for i in LOOP_IDS if i not in ids]
    assert list(demo.get_api_info()["named_endpoints"]) == ["/track", "/candidates"]  # the loop adds no public API
    head = launch_style()["head"]
    assert "keydown" in head and "#click-mode" in head
    for target in ("undo-btn", "next-flag-btn", "-frame-btn", "review-click-mode"):
        assert target in head
    assert "#review-timeline" in launch_style()["css"]


# -- the real workspace (random weights, small) ----------------------------------------------------
@pytest.mark.slow
def test_the_loop_on_the_real_workspace(tmp_path, small_video):
    """Import a planted fault, find its flag, fix, re-track only a span (untrained models, 256 px)."""
    from tracker.settings import Settings
    from ui.services import Services

    size = int(os.environ.get("TRACKER_IMAGE_SIZE", "256"))
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=size, max_size=256), tmp_path / "sessions"
    )
    store = SessionStore(tmp_path / "sessions")
    loop = ReviewLoop(Handlers(services, store))
    loop.agree_iou, loop.agree_frames = 0.0, 2  # untrained masks never agree by themselves
    try:
        session = opened(loop, small_video)
        loop.import_annotations(session, str(planted_zip(tmp_path, W, H, N, JUMP_AT)))
        loop.check(session)  # no prompt: no CLIP, so only the planted flag
        assert [(f.frame, f.reason) for f in session.review.flags] == [(JUMP_AT, "too_fast")]
        assert loop.next_flag(session, 0, review.EVERY_OBJECT).slider["value"] == JUMP_AT
        loop.click(session, JUMP_AT, select([300, 240]))
        final = list(loop.retrack(session))[-1]
        rewritten = sorted(set(session.workspace.last_retrack_frames))
        assert rewritten == list(range(JUMP_AT - 2, JUMP_AT + 3))  # the fix ± agree_frames
        assert f"Re-tracked **5 of {N} frames**" in final.status
        downloads = loop.prepare_downloads(session)
        names = {Path(p).name for p in downloads.files}
        assert {"flags.json", "flags.csv", "overlay.mp4", "annotations.zip"} <= names
        members = zipfile.ZipFile(downloads.zip_button["value"]).namelist()
        assert {"flags.json", "flags.csv", "coco.json", "masks/00000.png"} <= set(members)
    finally:
        store.close_all()
