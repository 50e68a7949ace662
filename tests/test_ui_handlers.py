"""The web app's handlers called directly, around the numpy-only stand-in workspace (fast)."""

from __future__ import annotations

import logging
import os
import time
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from tests.standin_workspace import StandInWorkspace, standin_services
from ui import text
from ui.app import build_demo
from ui.handlers import Handlers
from ui.review import ReviewLoop
from ui.services import MissingWeights
from ui.state import SessionStore, UISession


@pytest.fixture
def app(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    services = standin_services(tmp_path / "sessions")
    handlers = Handlers(services, store)
    yield handlers
    store.close_all()


def select(index) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": None})


def opened(app: Handlers, small_video: Path) -> UISession:
    session, estimate = app.on_video(None, str(small_video), "balanced")
    assert session.workspace is not None
    return session


def found(app: Handlers, small_video: Path, prompt: str = "red disc") -> UISession:
    session = opened(app, small_video)
    views = list(app.find(session, str(small_video), prompt, "", "balanced"))
    assert views[-1].gallery
    return session


def picked(app: Handlers, small_video: Path) -> UISession:
    session = found(app, small_video)
    app.pick_candidate(session, select(0))
    return session


def tracked(app: Handlers, small_video: Path) -> UISession:
    session = picked(app, small_video)
    list(app.track(session, "both"))
    return session


# -- step 1 -------------------------------------------------------------------------------------
def test_upload_opens_the_video_and_estimates(app, small_video):
    session, estimate = app.on_video(None, str(small_video), "balanced")
    assert isinstance(session.workspace, StandInWorkspace)
    assert "12 frames" in estimate and "about" in estimate
    _, fast = app.on_preset(session, "fast")
    assert fast != estimate  # the estimate follows the preset
    assert session.workspace.settings.preset == "fast"  # nothing picked yet: reopened with it


def test_clearing_the_video_resets_the_session(app, small_video):
    session = opened(app, small_video)
    workspace = session.workspace
    session, estimate = app.on_video(session, None, "balanced")
    assert session.workspace is None and workspace.closed and estimate == ""
    view = app.refine(session)
    assert view.frame is None and view.status == text.NO_VIDEO


def test_a_file_that_is_not_a_video_is_one_sentence(app, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(gr.Error) as raised:
        app.on_video(None, str(bad), "balanced")
    assert "not a readable video" in raised.value.message
    assert "Traceback" not in raised.value.message


# -- step 2 -------------------------------------------------------------------------------------
def test_find_streams_candidates_as_frames_finish(app, small_video):
    session = opened(app, small_video)
    views = list(app.find(session, str(small_video), "red disc", "", "balanced"))
    sizes = [len(v.gallery) for v in views]
    assert sizes[0] == 0  # the page says something before any model work
    assert sizes[1] > 0 and sizes[1] < sizes[-1]  # first frame's candidates before the rest
    image, caption = views[-1].gallery[0]
    assert image.dtype == np.uint8 and image.shape[2] == 3
    assert "score" in caption and "frame" in caption
    assert "Click one" in views[-1].status


@pytest.mark.parametrize(
    ("video", "prompt", "message"),
    [
        (None, "red disc", text.NO_VIDEO),
        ("clip", "   ", text.NO_PROMPT),
    ],
)
def test_find_needs_a_video_and_a_prompt(app, small_video, video, prompt, message):
    with pytest.raises(gr.Error) as raised:
        list(app.find(None, str(small_video) if video else None, prompt, "", "balanced"))
    assert raised.value.message == message


def test_validator_marks_the_missing_inputs(small_video):
    checks = Handlers.validate_find(None, None, "", "", "fast")
    assert [c["is_valid"] for c in checks] == [True, False, False, True, True]


def test_picking_a_candidate_follows_it_once(app, small_video):
    session = found(app, small_video)
    ws = session.workspace
    view = app.pick_candidate(session, select(1))
    assert list(ws.objects) == [1] and session.object_id == 1
    assert session.frame_idx == ws.candidates[1].frame_idx
    assert view.objects["choices"] == [("1 · red disc", 1)]
    assert "swatch" in view.legend and view.name == "red disc"
    again = app.pick_candidate(session, select(1))
    assert list(ws.objects) == [1] and "already object 1" in again.status
    app.pick_candidate(session, select(0))
    assert list(ws.objects) == [1, 2]
    captions = [c for _, c in app.find_view(session).gallery]
    assert "✓ object 2" in captions[0] and "✓ object 1" in captions[1]


def test_use_selected_restarts_the_current_object(app, small_video):
    session = found(app, small_video)
    with pytest.raises(gr.Error):
        app.use_selected(session)
    app.pick_candidate(session, select(0))
    session.selected_candidate = 2
    app.use_selected(session)
    ws = session.workspace
    assert list(ws.objects) == [1]
    assert ws.candidates[2].frame_idx in ws.prompted_frames()


def _where(ws) -> list[tuple[int, str]]:
    """Each candidate as (frame, side of the picture): the stand-in's looks are left and right discs."""
    return [(c.frame_idx, "left" if c.box[0] < ws.info.width / 2 else "right") for c in ws.candidates]


def test_not_this_one_drops_the_candidate_and_its_object_and_ranks_look_alikes_last(app, small_video):
    session = found(app, small_video)
    ws = session.workspace
    last = ws.info.num_frames - 1
    app.pick_candidate(session, select(0))  # the left disc on frame 0 → object 1
    app.pick_candidate(session, select(1))  # the right disc on frame 0 → object 2, selected
    view = app.reject_candidate(session)
    assert list(ws.objects) == [1] and session.object_id is None
    assert "rejected" in view.status and "Removed **red disc**" in view.status
    # by the text alone the sides would alternate; now the right discs (the rejected look) come last
    assert _where(ws) == [(0, "left"), (6, "left"), (last, "left"), (last, "right"), (6, "right")]
    assert session.accepted == {0: 1} and session.selected_candidate is None
    captions = [c for _, c in view.gallery]
    assert len(captions) == 5 and "✓ object 1" in captions[0]
    assert "(text " in captions[4]  # the score moved by the exemplars, the text score still shown
    with pytest.raises(gr.Error, match="Click the wrong candidate"):
        app.reject_candidate(session)  # nothing selected any more


def test_find_more_like_this_reranks_and_remaps_the_gallery_state(app, small_video):
    session = found(app, small_video)
    ws = session.workspace
    last = ws.info.num_frames - 1
    with pytest.raises(gr.Error, match="Pick a candidate first"):
        app.more_like(session)
    app.pick_candidate(session, select(0))  # left disc, frame 0 → object 1
    app.pick_candidate(session, select(4))  # left disc, last frame → object 2, the current one
    assert _where(ws)[4] == (last, "left") and session.selected_candidate == 4
    view = app.more_like(session)
    assert "likeness to **red disc**" in view.status
    # most like the last frame's left disc first, then the other left discs, the right ones last
    assert _where(ws)[:3] == [(last, "left"), (6, "left"), (0, "left")]
    assert {side for _, side in _where(ws)[3:]} == {"right"}
    assert session.accepted == {0: 2, 2: 1} and session.selected_candidate == 0
    captions = [c for _, c in view.gallery]
    assert "✓ object 2" in captions[0] and "✓ object 1" in captions[2]
    again = app.pick_candidate(session, select(0))
    assert "already object 2" in again.status  # a click after re-ranking finds the right object


# -- step 3 -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "clicks", "expected_labels", "has_box"),
    [
        ("positive", [(40, 60)], [1], False),
        ("negative", [(40, 60)], None, False),  # only a negative click: the library refuses it
        ("box", [(20, 20), (90, 80)], [], True),
        ("box", [(20, 20)], None, False),  # one corner: nothing sent yet
    ],
)
def test_clicks_by_mode(app, small_video, mode, clicks, expected_labels, has_box):
    session = opened(app, small_video)
    app.set_mode(session, mode)
    error = None
    for x, y in clicks:
        try:
            app.click(session, select([x, y]))
        except gr.Error as raised:
            error = raised
    prompts = session.workspace.prompts()
    if expected_labels is None:
        assert not prompts
        if mode == "negative":
            assert error is not None and "positive" in error.message
        else:
            assert session.box_start == (5.0, 5.0)  # video pixels: the picture is shown 4× larger
        return
    assert error is None
    (prompt,) = prompts
    assert prompt.labels == expected_labels and (prompt.box is not None) == has_box


def test_a_click_with_no_object_makes_one_and_updates_the_mask(app, small_video):
    session = opened(app, small_video)
    before = app.refine(session).frame
    view = app.click(session, select([80, 60]))
    assert list(session.workspace.objects) == [1]
    assert not np.array_equal(before, view.frame)  # the mask is drawn right away
    app.set_mode(session, "negative")
    app.click(session, select([80, 60]))
    assert session.workspace.prompts()[0].labels == [1, 0]


def test_frame_slider_object_list_and_editing(app, small_video):
    session = picked(app, small_video)
    view = app.goto_frame(session, 7)
    assert session.frame_idx == 7 and view.slider["value"] == 7
    app.add_object(session)
    assert session.object_id == 2
    app.rename_object(session, "blue square")
    assert session.workspace.objects[2].name == "blue square"
    with pytest.raises(gr.Error):
        app.rename_object(session, "  ")
    app.select_object(session, 1)
    assert session.object_id == 1
    app.remove_object(session)
    assert list(session.workspace.objects) == [2]
    app.undo(session)
    assert list(session.workspace.objects) == [1, 2]
    app.redo(session)
    assert list(session.workspace.objects) == [2]


def test_clear_and_undo_on_a_frame(app, small_video):
    session = opened(app, small_video)
    app.click(session, select([50, 50]))
    assert session.workspace.prompts()
    view = app.clear_frame(session)
    assert not session.workspace.prompts() and "Cleared" in view.status
    assert "Nothing to clear" in app.clear_frame(session).status
    app.undo(session)
    assert session.workspace.prompts()


@pytest.mark.parametrize(
    ("mode", "expected_area"),
    [("replace", 400), ("add", None), ("erase", None)],
)
def test_brush(app, small_video, mode, expected_area):
    session = opened(app, small_video)
    app.click(session, select([80, 60]))
    clicked = session.workspace.result_at(0).mask_of(1)
    _, editor, where = app.load_brush(session)
    assert "frame 0" in where
    assert editor["background"].shape == (480, 640, 3)  # shown 4× larger, like the click view
    layer = np.zeros((120, 160, 4), np.uint8)
    layer[50:70, 70:90, 3] = 255  # 20×20 painted over the clicked disc
    app.apply_brush(session, {"background": editor["background"], "layers": [layer], "composite": None}, mode)
    mask = session.workspace.result_at(0).mask_of(1)
    painted = layer[..., 3] > 0
    if mode == "replace":
        assert mask.sum() == expected_area
    elif mode == "add":
        assert np.array_equal(mask, clicked | painted)
    else:
        assert np.array_equal(mask, clicked & ~painted)


@pytest.mark.parametrize(("width", "scale"), [(160, 4), (256, 2), (320, 2), (480, 1), (1280, 1)])
def test_small_videos_are_shown_enlarged(width, scale):
    from ui.handlers import display_scale

    assert display_scale(width) == scale


def test_clicks_on_the_enlarged_picture_land_on_video_pixels(app, small_video):
    session = opened(app, small_video)
    view = app.refine(session)
    assert view.frame.shape == (480, 640, 3)  # the 160×120 clip, shown 4× larger
    app.click(session, select([400, 200]))
    assert session.workspace.prompts()[0].points == [(100.0, 50.0)]


def test_brush_layer_at_another_size_is_scaled(app, small_video):
    session = opened(app, small_video)
    layer = np.zeros((240, 320, 4), np.uint8)
    layer[100:140, 140:180, 3] = 255
    app.apply_brush(session, {"background": None, "layers": [layer], "composite": None}, "replace")
    assert session.workspace.result_at(0).mask_of(1).sum() == 400


def test_empty_brush_is_refused(app, small_video):
    session = opened(app, small_video)
    with pytest.raises(gr.Error) as raised:
        app.apply_brush(
            session,
            {"background": None, "layers": [np.zeros((120, 160, 4), np.uint8)], "composite": None},
            "replace",
        )
    assert "Paint over" in raised.value.message


# -- step 4–6 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("streaming", [False, True])
def test_track_streams_and_ends_with_the_overlay(tmp_path, small_video, streaming):
    store = SessionStore(tmp_path / "s")
    app = Handlers(standin_services(tmp_path / "s", streaming=streaming), store)
    session = found(app, small_video)
    app.pick_candidate(session, select(2))  # a candidate on the middle frame: both directions
    views = list(app.track(session, "both"))
    final = views[-1]
    assert "Done: 12 frames tracked" in final.status
    assert len(session.workspace.store) == 12
    if streaming:
        segments = [v.video for v in views if isinstance(v.video, Path)]
        assert segments and all(p.suffix == ".mp4" and p.stat().st_size > 0 for p in segments)
    else:
        assert Path(final.video).is_file()
        assert any(isinstance(v.live, dict) and v.live.get("visible") for v in views)
    loop = ReviewLoop(app)  # step 5
    review = loop.review_view(session)
    assert review.frame is not None and review.slider["maximum"] == 11
    image, status, _, _ = loop.review_frame(session, 3)
    assert image.shape == (480, 640, 3) and "Frame 3" in status  # shown 4× larger
    assert loop.fix_frame(session, 3).slider["value"] == 3
    store.close_all()


def test_finding_new_ones_while_tracking_lists_them_when_done(tmp_path, small_video):
    store = SessionStore(tmp_path / "s")
    app = Handlers(standin_services(tmp_path / "s"), store)
    session = found(app, small_video)
    app.pick_candidate(session, select(0))
    first = min(session.workspace.prompted_frames())
    final = list(app.track(session, "forward", True, 4))[-1]
    new_id = max(session.workspace.objects)
    name = session.workspace.objects[new_id].name
    assert f"Found while tracking: #{new_id} ({name}) found at 0:00, score 27.4." in final.status
    assert "Next flagged" in final.status  # where to check it
    assert [r.frame for r in session.workspace.found] == [first + 4]
    off = list(app.track(session, "forward", False, 4))[-1]
    assert "Found while tracking" in off.status  # what was found stays found
    assert len(session.workspace.found) == 1  # but the switch off looks for nothing more
    store.close_all()


def test_the_switch_on_without_a_prompt_tracks_and_says_nothing_was_looked_for(tmp_path, small_video):
    """The switch starts on; objects made by clicks alone (no Find, no prompt) still track."""
    store = SessionStore(tmp_path / "s")
    app = Handlers(standin_services(tmp_path / "s"), store)
    session = opened(app, small_video)
    app.click(session, select([80, 60]))
    final = list(app.track(session, "forward", True, 4))[-1]
    assert "Done" in final.status and text.DISCOVER_NO_PROMPT in final.status
    assert session.workspace.found == [] and session.workspace.last_discovery is None
    store.close_all()


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_one_way_runs_still_end_with_a_video(tmp_path, small_video, streaming, direction):
    store = SessionStore(tmp_path / "s")
    app = Handlers(standin_services(tmp_path / "s", streaming=streaming), store)
    session = found(app, small_video)
    app.pick_candidate(session, select(2))
    final = list(app.track(session, direction))[-1]
    assert "Done" in final.status
    assert final.video is not None and Path(final.video).is_file()
    store.close_all()


def test_track_without_objects_says_so(app, small_video):
    session = opened(app, small_video)
    with pytest.raises(gr.Error) as raised:
        list(app.track(session, "both"))
    assert "Nothing to track" in raised.value.message
    assert not session.tracking


def test_stop_keeps_what_was_done(app, small_video, monkeypatch):
    monkeypatch.setattr(StandInWorkspace, "track_delay", 0.02)
    session = picked(app, small_video)
    run = app.track(session, "forward")
    next(run)
    next(run)
    assert "Stopping" in app.stop(session)
    rest = list(run)
    assert "Stopped" in rest[-1].status
    kept = len(session.workspace.store)
    assert 0 < kept < 12
    assert not session.tracking
    assert "kept" in app.after_stop(session).status


def test_stop_with_nothing_running_changes_nothing(app, small_video):
    session = picked(app, small_video)
    assert app.stop(session) == gr.skip()
    assert not session.cancel.is_set()
    assert all(value == gr.skip() for value in app.after_stop(session)[1:])


def test_after_stop_when_gradio_cancelled_the_generator(app, small_video, monkeypatch):
    monkeypatch.setattr(StandInWorkspace, "track_delay", 0.02)
    session = picked(app, small_video)
    run = app.track(session, "forward")
    next(run)
    next(run)
    app.stop(session)
    run.close()  # what `cancels=[track_event]` does to a generator
    assert not session.tracking
    view = app.after_stop(session)
    assert "kept" in view.status


def test_downloads_and_project_round_trip(app, small_video, tmp_path):
    loop = ReviewLoop(app)  # steps 5 and 6
    assert loop.prepare_downloads(None).status == text.NOTHING_TRACKED
    session = tracked(app, small_video)
    view = loop.prepare_downloads(session)
    names = [Path(p).name for p in view.files]
    assert names[0] == "annotations.zip" and "project.json" in names
    assert "masks" not in names  # folders go in the zip only
    assert zipfile.is_zipfile(view.zip_button["value"])
    project = view.project_button["value"]
    other = app.on_video(None, str(small_video), "balanced")[0]
    opened_view = app.open_project(other, project)
    assert list(other.workspace.objects) == [1] and "Project opened" in opened_view.status


def test_open_project_needs_the_video_first(app, tmp_path):
    project = tmp_path / "p.json"
    project.write_text("{}")
    with pytest.raises(gr.Error) as raised:
        app.open_project(None, str(project))
    assert "Upload the video" in raised.value.message


def test_batch_api_returns_overlay_and_zip(app, small_video):
    overlay, archive = app.api_track(str(small_video), "red disc", "", "fast", 2)
    assert Path(overlay).suffix == ".mp4" and zipfile.is_zipfile(archive)
    with pytest.raises(gr.Error) as raised:
        app.api_track(str(small_video), "", "", "", 1)
    assert raised.value.message == text.NO_PROMPT


def test_unexpected_errors_are_logged_not_shown(app, small_video, monkeypatch, caplog):
    session = opened(app, small_video)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("internal detail")

    monkeypatch.setattr(session.workspace, "preview", broken)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(gr.Error) as raised:
            app.goto_frame(session, 2)
    assert "internal detail" not in raised.value.message and "ref " in raised.value.message
    assert "ZeroDivisionError" in caplog.text


# -- sessions -----------------------------------------------------------------------------------
def test_sessions_are_private_and_cleaned_up(tmp_path, small_video):
    store = SessionStore(tmp_path / "root")
    app = Handlers(standin_services(tmp_path / "root"), store)

    class Request:
        def __init__(self, session_hash):
            self.session_hash = session_hash

    a, _ = app.on_video(None, str(small_video), "balanced", Request("aaa"))
    b, _ = app.on_video(None, str(small_video), "balanced", Request("bbb"))
    assert a.workdir != b.workdir and a.workspace is not b.workspace
    assert store.get(None, "aaa") is a  # found again by session hash
    store.close("aaa")
    assert not a.workdir.exists() and a.workspace is None and b.workdir.exists()
    store.discard(b)
    assert not b.workdir.exists() and len(store) == 0


def test_sweep_removes_old_stray_folders(tmp_path):
    store = SessionStore(tmp_path, stray_age=60)
    live = store.get(None, "live")
    stray = tmp_path / "session-crashed"
    stray.mkdir()
    old = time.time() - 3600
    os.utime(stray, (old, old))
    os.utime(live.workdir, (old, old))
    removed = store.sweep()
    assert removed == [stray] and live.workdir.exists()


# -- the page -----------------------------------------------------------------------------------
REQUIRED_IDS = [
    "video-input",
    "prompt",
    "find-btn",
    "candidates",
    "reject-candidate-btn",
    "more-like-btn",
    "frame-view",
    "track-btn",
    "stop-btn",
    "result-video",
    "downloads",
]


def _components(demo: gr.Blocks) -> dict[str, dict]:
    return {c["props"].get("elem_id"): c for c in demo.config["components"] if c["props"].get("elem_id")}


def test_page_has_the_stable_ids_and_one_public_endpoint(tmp_path):
    demo = build_demo(standin_services(tmp_path))
    ids = _components(demo)
    assert all(i in ids for i in REQUIRED_IDS)
    endpoints = demo.get_api_info()["named_endpoints"]
    assert list(endpoints) == ["/track", "/candidates"]
    params = [p["parameter_name"] for p in endpoints["/track"]["parameters"]]
    assert params == ["video", "prompt", "negative_prompt", "preset", "max_objects", "discover", "discover_every"]
    params = [p["parameter_name"] for p in endpoints["/candidates"]["parameters"]]
    assert params == ["video", "prompt", "negative_prompt", "preset", "max_candidates"]
    assert "random-weights-banner" not in ids and ids["find-btn"]["props"]["interactive"] is True


def test_random_weights_banner(tmp_path):
    from tracker.settings import Settings

    demo = build_demo(standin_services(tmp_path, settings=Settings(random_weights=True)))
    banner = _components(demo)["random-weights-banner"]
    assert "masks are meaningless" in banner["props"]["value"]


def test_missing_weights_banner_disables_the_run_buttons(tmp_path):
    missing = [MissingWeights("SAM 2.1 tiny", ".venv/bin/python -m tracker download tiny")]
    demo = build_demo(standin_services(tmp_path, missing_weights=missing))
    ids = _components(demo)
    banner = ids["missing-weights-banner"]["props"]["value"]
    assert "SAM 2.1 tiny" in banner and "python -m tracker download tiny" in banner
    assert ids["find-btn"]["props"]["interactive"] is False
    assert ids["track-btn"]["props"]["interactive"] is False


def test_streaming_output_only_with_ffmpeg_and_ffprobe(tmp_path):
    streaming = _components(build_demo(standin_services(tmp_path, streaming=True)))
    plain = _components(build_demo(standin_services(tmp_path, streaming=False)))
    assert streaming["result-video"]["props"]["streaming"] is True
    assert plain["result-video"]["props"]["streaming"] is False


# -- the real workspace (random weights, small) --------------------------------------------------
@pytest.mark.slow
def test_handlers_drive_the_real_workspace(tmp_path, small_video):
    """Find → pick → click → track → downloads with the real models (untrained, 256 px)."""
    from tracker.settings import Settings
    from ui.services import Services

    size = int(os.environ.get("TRACKER_IMAGE_SIZE", "256"))
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=size, max_size=256), tmp_path / "sessions"
    )
    assert services.ready and services.random_weights
    store = SessionStore(tmp_path / "sessions")
    app = Handlers(services, store)
    try:
        session, estimate = app.on_video(None, str(small_video), "fast")
        assert "12 frames" in estimate
        views = list(app.find(session, str(small_video), "a red disc", "", "fast"))
        assert views[-1].gallery, views[-1].status
        view = app.pick_candidate(session, select(0))
        assert view.frame.shape == (480, 640, 3) and list(session.workspace.objects) == [1]  # shown 4× larger
        ws = session.workspace
        assert all(c.embedding is not None for c in ws.candidates)  # Find's CLIP crop features, kept
        if len(ws.candidates) > 1:
            count = len(ws.candidates)
            app.more_like(session)  # the accepted candidate is the most like itself
            assert session.accepted == {0: 1} and session.selected_candidate == 0
            session.selected_candidate = count - 1
            app.reject_candidate(session)  # "not this one": gone, its look negative
            assert len(ws.candidates) == count - 1 and ws.exemplars.negative_count == 1
            assert list(ws.objects) == [1]
        app.click(session, select([40, 40]))
        app.undo(session)
        app.redo(session)
        final = list(app.track(session, "both"))[-1]
        assert "Done: 12 frames tracked" in final.status
        downloads = ReviewLoop(app).prepare_downloads(session)
        names = {Path(p).name for p in downloads.files}
        assert {"annotations.zip", "overlay.mp4", "coco.json", "flags.json"} <= names
    finally:
        store.close_all()


def test_real_services_name_missing_weights_and_the_fix(tmp_path, monkeypatch):
    """Without weights the app still builds; the banner names each model and the command."""
    from tracker.settings import Settings
    from ui.services import Services

    monkeypatch.setenv("TRACKER_CHECKPOINTS", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    services = Services.from_settings(
        Settings(offline=True, checkpoints_dir=tmp_path / "empty"), tmp_path / "s"
    )
    assert not services.ready
    assert all("tracker download" in m.fix for m in services.missing_weights)
    ids = _components(build_demo(services))
    assert ids["find-btn"]["props"]["interactive"] is False
    assert "<code>" in ids["missing-weights-banner"]["props"]["value"]


# -- command line -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("alice:s3cret", ("alice", "s3cret")),
        ("a:b:c", ("a", "b:c")),
        ("alice", "error"),
        (":pw", "error"),
    ],
)
def test_auth_option(value, expected):
    from tracker.errors import InputError
    from ui.launch import parse_auth

    if expected == "error":
        with pytest.raises(InputError):
            parse_auth(value)
    else:
        assert parse_auth(value) == expected


def test_options_and_environment(monkeypatch):
    from ui.launch import build_parser, launch_options, settings_from

    for name in ("TRACKER_RANDOM_WEIGHTS", "TRACKER_IMAGE_SIZE", "TRACKER_AUTH", "TRACKER_PRESET"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args([])
    options = launch_options(args)
    # host and port left to Gradio (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT), never a public link
    assert options["server_name"] is None and options["server_port"] is None
    assert options["share"] is False and options["auth"] is None
    assert settings_from(args).random_weights is False
    monkeypatch.setenv("TRACKER_RANDOM_WEIGHTS", "1")
    monkeypatch.setenv("TRACKER_IMAGE_SIZE", "256")
    args = build_parser().parse_args(["--host", "0.0.0.0", "--port", "8080", "--share", "--device", "cpu"])
    settings = settings_from(args)
    assert settings.random_weights and settings.image_size == 256 and settings.device == "cpu"
    assert launch_options(args)["server_name"] == "0.0.0.0" and launch_options(args)["share"] is True
