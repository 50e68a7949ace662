"""The app on ZeroGPU, without a Space: every model call forks, pickles and forgets, as there.

``tests/fake_spaces.py`` stands in for the ``spaces`` package (installed in ``sys.modules``
with ``SPACES_ZERO_GPU=true`` before the services and the page are built). The whole workflow
then runs through the page's handlers with untrained models at 256 px: find, pick, click,
undo/redo, track (cut into several GPU calls), review with CLIP flags, a fix and re-track,
downloads; and a GPU call that runs out of time keeps what it did and the next Track continues.
"""

from __future__ import annotations

import math
import os
import time
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from tests import fake_spaces
from tracker import engine
from tracker.remote import RemoteSession, RemoteWorkspace
from tracker.settings import Settings
from ui.handlers import Handlers
from ui.review import ReviewLoop
from ui.state import SessionStore

pytestmark = pytest.mark.slow


def select(index) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": None})


def calls(name: str) -> list[fake_spaces.Call]:
    return [c for c in fake_spaces.CALLS if c.name == name]


@pytest.fixture
def loop(tmp_path, monkeypatch, one_hub):
    from ui.app import build_demo
    from ui.services import Services

    fake_spaces.install(monkeypatch)
    monkeypatch.setattr(fake_spaces, "TIME_SCALE", 20.0)  # this CPU stands in for a GPU slice
    monkeypatch.setattr(engine, "_hub", None)  # the services set it; put it back afterwards
    # just over the load allowance: two frames per tracking call, so runs take several calls
    monkeypatch.setenv("TRACKER_GPU_SECONDS", str(engine.LOAD_SECONDS + 0.05))
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=256, max_size=256), tmp_path / "sessions"
    )
    assert services.device_label == "ZeroGPU"
    build_demo(services)  # the page builds with the stand-in installed
    store = SessionStore(tmp_path / "sessions")
    yield ReviewLoop(Handlers(services, store))
    store.close_all()


def test_the_whole_workflow_runs_in_forked_gpu_calls(loop, small_video):
    h = loop.handlers
    session, _ = h.on_video(None, str(small_video), "fast")
    ws = session.workspace
    assert isinstance(ws, RemoteWorkspace)

    # find: candidates stream back from the GPU process
    views = list(h.find(session, str(small_video), "red disc", "", "fast"))
    assert views[-1].gallery and ws.candidates
    assert calls("find_candidates")[0].items > 1

    # refine: the candidate's mask, then a click, each one GPU call; undo / redo need none
    h.pick_candidate(session, select(0))
    assert isinstance(ws.session, RemoteSession) and ws.session.object_ids == (1,)
    first = session.frame_idx
    h.click(session, select([300, 240]))
    prompts = len(calls("prompt_frames"))
    assert prompts == 2
    h.undo(session)
    h.redo(session)
    assert len(calls("prompt_frames")) == prompts  # replayed from what is known
    clicked = ws.prompts()[-1]
    assert clicked.points == [(75.0, 60.0)] and clicked.frame_idx == first

    # track: every frame once, streamed, over several calls that each fit the GPU time
    views = list(h.track(session, "both"))
    assert "Done: 12 frames tracked" in views[-1].status
    assert len(ws.store) == 12 and ws.last_overlay is not None and ws.last_overlay.is_file()
    tracking = calls("track_frames")
    per_call = engine.frames_per_call(ws.settings, 1, ws.engine.max_seconds)
    legs = [first, 12 - first] if first else [12]
    assert [c.items for c in tracking] == [
        min(per_call, n - i) for n in legs if n for i in range(0, n, per_call)
    ]
    assert len(tracking) == sum(math.ceil(n / per_call) for n in legs if n)
    assert max(c.received / c.items for c in tracking) < 20_000  # RLE masks, not arrays

    # review: CLIP's crop scores come from a GPU call too; a fix re-tracks a span
    view = loop.check(session)
    assert session.review is not None and view is not None
    assert calls("clip_series")
    loop.agree_iou, loop.agree_frames = 0.0, 2  # untrained masks never agree by themselves
    fix = 6
    loop.click(session, fix, select([320, 200]))
    final = list(loop.retrack(session))[-1]
    assert "Re-tracked" in final.status
    assert set(ws.last_retrack_frames) >= {fix}

    # download: every file, from the results kept in this process
    downloads = loop.prepare_downloads(session)
    names = {Path(p).name for p in downloads.files}
    assert {"overlay.mp4", "annotations.zip", "project.json"} <= names
    members = zipfile.ZipFile(downloads.zip_button["value"]).namelist()
    assert {"coco.json", "flags.json", "masks/00000.png"} <= set(members)

    # every model call ran in its own forked process, none ran out of time
    assert {c.pid for c in fake_spaces.CALLS}.isdisjoint({0, os.getpid()})
    assert len({c.pid for c in fake_spaces.CALLS}) == len(fake_spaces.CALLS)
    assert not [c for c in fake_spaces.CALLS if c.aborted]


def stalls_after_three(video, settings, prompts, legs):
    """A tracking call that gets three frames done, then hangs until its GPU time is up."""
    for count, masks in enumerate(engine.track_frames(video, settings, prompts, legs)):
        yield masks
        if count == 2:
            time.sleep(600)


def test_out_of_gpu_time_keeps_the_frames_and_track_continues(loop, small_video, monkeypatch):
    h = loop.handlers
    monkeypatch.setattr(fake_spaces, "TIME_SCALE", 1.0)
    session, _ = h.on_video(None, str(small_video), "fast")
    ws = session.workspace
    real = ws.engine
    # one call for the whole run, which stalls
    ws.engine = engine_with(real, track=fake_spaces.GPU(duration=12)(stalls_after_three), max_seconds=600)
    ws.set_mask(ws.add_object("disc").object_id, 0, disc_mask(ws))
    with pytest.raises(gr.Error) as raised:
        list(h.track(session, "forward"))
    assert "continue from frame 3" in raised.value.message
    assert ws.store.frames() == [0, 1, 2]  # what was done is kept
    assert calls("stalls_after_three")[-1].aborted

    ws.session.engine = engine_with(real, max_seconds=600)
    views = list(h.track(session, "forward"))
    assert "12 frames tracked" in views[-1].status and len(ws.store) == 12
    assert [c.items for c in calls("track_frames")] == [9]  # only the frames still to do


def engine_with(base, **changes):
    import dataclasses

    return dataclasses.replace(base, **changes)


def disc_mask(ws):
    import numpy as np

    yy, xx = np.mgrid[: ws.info.height, : ws.info.width]
    return (xx - 40) ** 2 + (yy - 60) ** 2 < 15**2


def test_stop_keeps_the_frames_and_track_continues(loop, small_video):
    h = loop.handlers
    session, _ = h.on_video(None, str(small_video), "fast")
    ws = session.workspace
    ws.set_mask(ws.add_object("disc").object_id, 0, disc_mask(ws))
    run = h.track(session, "forward")
    next(run)  # "Loading SAM 2…"
    next(run)  # the first frame is back
    assert h.stop(session) == "Stopping after the current frame…"
    views = list(run)
    kept = len(ws.store)
    assert 1 <= kept < 12 and f"The {kept} frames tracked so far are kept" in views[-1].status
    before = len(calls("track_frames"))
    views = list(h.track(session, "forward"))
    assert len(ws.store) == 12
    # the frames kept are not tracked again: the new calls track the rest
    assert sum(c.items for c in calls("track_frames")[before:]) == 12 - kept


def test_one_call_gives_the_masks_of_the_local_session(loop, small_video, tmp_path, one_hub):
    """Tracked in a forked process from plain prompts = tracked in this process's SAM 2 session."""
    from tracker.masks import mask_iou
    from tracker.workspace import Workspace

    h = loop.handlers
    session, _ = h.on_video(None, str(small_video), "fast")
    remote = session.workspace
    remote.engine = engine_with(remote.engine, max_seconds=600)  # the whole run in one call
    local = Workspace.open(remote.info.path, one_hub, remote.settings, tmp_path / "local")
    for ws in (remote, local):
        ws.set_mask(ws.add_object("disc").object_id, 0, disc_mask(ws))
        ws.add_click(1, 5, 40.0, 60.0)
        list(ws.track(direction="forward"))
    assert len(calls("track_frames")) == 1
    assert sum(bool(local.store.mask(f, 1).any()) for f in range(12)) >= 6  # something to compare
    for frame_idx in range(12):
        mine, theirs = remote.store.get(frame_idx), local.store.get(frame_idx)
        assert mine.object_ids == theirs.object_ids == (1,)
        assert mask_iou(mine.masks[0], theirs.masks[0], empty=1.0) > 0.98, frame_idx
    local.close()


def test_the_batch_api_runs_on_gpu_calls_too(loop, small_video):
    """``/track`` (and the MCP tool) open the same kind of workspace: find, track, export."""
    overlay, annotations = loop.handlers.api_track(str(small_video), "red disc", None, "fast", 1)
    assert Path(overlay).is_file() and zipfile.ZipFile(annotations).namelist()
    names = {c.name for c in fake_spaces.CALLS}
    assert {"find_candidates", "prompt_frames", "track_frames", "clip_series"} <= names
