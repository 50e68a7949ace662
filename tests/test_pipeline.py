"""The headless run (tracker.pipeline.track_video): events, summary, stops, and one bundle everywhere.

Most tests drive the numpy stand-in workspace through ``open_workspace`` (milliseconds). The
slow test runs the real models with random weights through the command line, the ``/track``
endpoint and the app's download, and checks that all three write the same files.
"""

from __future__ import annotations

import json
import threading
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from tests.standin_workspace import StandInWorkspace
from tracker.errors import Cancelled, InputError, VideoError
from tracker.pipeline import STAGES, LengthLimit, RunEvent, track_video
from tracker.settings import Settings

FRAMES = 12  # small_video


def standin(video, settings, workdir):
    return StandInWorkspace.open(video, None, settings, workdir)


def run(video, out, **kwargs):
    events: list[RunEvent] = []
    summary = track_video(
        video,
        out,
        Settings(preset="fast"),
        "red disc",
        open_workspace=standin,
        progress=events.append,
        **kwargs,
    )
    return summary, events


def test_events_come_stage_by_stage_and_each_stage_ends_with_the_summary(small_video, tmp_path):
    summary, events = run(small_video, tmp_path / "out")
    stages = [e.stage for e in events]
    assert sorted(set(stages), key=STAGES.index) == list(STAGES)
    assert stages == sorted(stages, key=STAGES.index)  # never back to an earlier stage
    finished = [e for e in events if e.finished]
    assert [e.stage for e in finished] == list(STAGES)
    assert all(e.summary is summary and e.fraction == 1.0 for e in finished)
    assert finished[0].message.startswith("shapes.mp4: 12 frames")
    assert finished[1].message == "tracking 1 object(s): #1 red disc"
    tracked = [e for e in events if e.stage == "track" and not e.finished]
    assert [e.done for e in tracked] == list(range(1, FRAMES + 1))
    assert all(e.total == FRAMES and 0 <= e.fraction <= 1 and e.frame is not None for e in tracked)


def test_summary_says_what_was_chosen_written_and_flagged(small_video, tmp_path):
    out = tmp_path / "out"
    summary, _ = run(small_video, out, max_objects=2)
    assert summary.settings.preset == "fast" and not summary.cancelled
    assert (summary.info.frames, summary.info.width, summary.info.height) == (FRAMES, 160, 120)
    assert summary.num_candidates == 6 and summary.candidates[0].rank == 1
    assert [(o.object_id, o.chosen, o.rank) for o in summary.objects] == [
        (1, "candidate", 1),
        (2, "candidate", 2),
    ]
    assert summary.objects[0].first_frame == summary.candidates[0].frame
    assert summary.frames_tracked == FRAMES
    assert list(summary.files)[-1] == "zip" and {"flags_json", "flags_csv", "overlay"} <= set(summary.files)
    assert all(Path(p).parent == out for p in summary.files.values())
    assert set(summary.timings) == {"open", "find", "track", "export", "total"}
    data = json.loads(json.dumps(summary.to_dict()))  # JSON-ready as it is
    assert data["video_info"]["frames"] == FRAMES and data["num_flags"] == len(summary.flags)
    assert data["files"]["zip"] == str(out / "annotations.zip") and data["random_weights"] is False
    members = zipfile.ZipFile(summary.files["zip"]).namelist()
    assert {"flags.json", "flags.csv"} <= set(members)


def test_a_stop_while_tracking_keeps_and_exports_what_was_tracked(small_video, tmp_path):
    cancel = threading.Event()

    def stop_after_three(event: RunEvent) -> None:
        if event.stage == "track" and event.done == 3:
            cancel.set()

    summary = track_video(
        small_video, tmp_path / "out", Settings(), "red disc",
        open_workspace=standin, progress=stop_after_three, cancel=cancel,
    )  # fmt: skip
    assert summary.cancelled and summary.frames_tracked == 3
    assert Path(summary.files["zip"]).is_file()


def test_a_stop_before_tracking_writes_nothing(small_video, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        track_video(
            small_video, tmp_path / "out", Settings(), "red disc", open_workspace=standin, cancel=cancel
        )
    assert not (tmp_path / "out" / "annotations.zip").exists()


@pytest.mark.parametrize(
    ("limit", "fragment"),
    [
        (LengthLimit(max_frames=5, fix="trim it"), "more than the limit of 5 frames; trim it."),
        (LengthLimit(max_seconds=0.5), "more than the limit of"),
    ],
)
def test_a_video_over_the_limit_is_one_sentence(small_video, tmp_path, limit, fragment):
    with pytest.raises(VideoError, match=fragment):
        track_video(
            small_video, tmp_path / "out", Settings(), "red disc", open_workspace=standin, limit=limit
        )


def test_nothing_found_is_one_sentence(small_video, tmp_path, monkeypatch):
    monkeypatch.setattr(StandInWorkspace, "find_candidates", lambda self, *args, **kwargs: iter(()))
    with pytest.raises(InputError, match="Nothing in the video matched 'red disc'"):
        track_video(small_video, tmp_path / "out", Settings(), "red disc", open_workspace=standin)


# -- one bundle: the command line, /track and the app's download ---------------------------------
FAST = Settings(random_weights=True, preset="fast", image_size=256, max_size=256, device="cpu", offline=True)
FAST_ARGS = ["--random-weights", "--device", "cpu", "--image-size", "256", "--max-size", "256",
             "--preset", "fast", "--offline"]  # fmt: skip


def bundle(folder: Path, zip_path: Path) -> tuple[set[str], set[str]]:
    """Top-level names in an export folder (the work folder aside) and the names in its zip."""
    names = {p.name for p in folder.iterdir() if p.name != ".work"}
    return names, set(zipfile.ZipFile(zip_path).namelist())


@pytest.mark.slow
def test_cli_track_endpoint_and_app_download_write_the_same_files(small_video, tmp_path, one_hub):
    from tracker.cli import main
    from ui.handlers import Handlers
    from ui.review import ReviewLoop
    from ui.services import Services
    from ui.state import SessionStore

    out = tmp_path / "cli"
    assert (
        main(["-q", "track", str(small_video), "--prompt", "a red disc", "--out", str(out), *FAST_ARGS]) == 0
    )
    from_cli = bundle(out, out / "annotations.zip")

    services = Services.from_settings(FAST, tmp_path / "sessions")
    store = SessionStore(tmp_path / "sessions")
    handlers = Handlers(services, store)
    loop = ReviewLoop(handlers)
    try:
        overlay, archive = handlers.api_track(str(small_video), "a red disc", "", "fast", 1)
        from_endpoint = bundle(Path(archive).parent, Path(archive))

        session, _ = handlers.on_video(None, str(small_video), "fast")
        list(handlers.find(session, str(small_video), "a red disc", "", "fast"))
        handlers.pick_candidate(session, gr.SelectData(None, {"index": 0, "value": None}))
        list(handlers.track(session, "both"))
        loop.check(session)
        downloads = loop.prepare_downloads(session)
        archive = Path(downloads.zip_button["value"])
        names, members = bundle(archive.parent, archive)
        # the app offers the project file beside the bundle (to open again), not in it
        assert "project.json" in names and "project.json" not in members
        from_app = (names - {"project.json"}, members)
    finally:
        store.close_all()
    assert from_cli == from_endpoint == from_app
    names, members = from_cli
    assert {"annotations.zip", "overlay.mp4", "coco.json", "flags.json", "flags.csv", "masks"} <= names
    assert {"flags.json", "flags.csv", "overlay.mp4", "masks/00000.png"} <= members
