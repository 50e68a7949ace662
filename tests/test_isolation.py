"""Many users on one server (issue #5): private sessions, private files, bounded disk, safe launch.

Handler-level tests use the real services (opening a video only probes it: no model runs);
the launched-app test drives two ``gradio_client`` clients against the numpy stand-in
workspace, so it takes seconds.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from tests.standin_workspace import StandInWorkspace, standin_services
from tests.synthetic import make_video
from tracker.errors import InputError
from tracker.settings import Settings
from tracker.types import FrameResult
from ui.app import build_demo
from ui.handlers import Handlers, private_copy
from ui.launch import build_parser, check_temp_root, launch_options, limits_from, parse_size
from ui.review import ReviewLoop
from ui.services import Services
from ui.state import MIN_IDLE_BEFORE_EVICTION_SECONDS, SessionStore

REAL = Settings(random_weights=True, preset="fast", image_size=256, max_size=256, device="cpu", offline=True)


class Request:
    """What Gradio passes as ``gr.Request``: only the session hash matters here."""

    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    a = folder / "a b;$(touch pwned) ünï.mp4"  # a hostile upload name
    make_video(a, num_frames=3, width=160, height=120, fps=6)
    b = folder / "b.mp4"
    make_video(b, num_frames=2, width=96, height=64, fps=6)
    return {"a": a, "b": b}


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# -- two sessions, one server --------------------------------------------------------------------
def test_two_sessions_never_see_each_others_video_masks_or_files(tmp_path, clips):
    root = tmp_path / "sessions"
    app = Handlers(Services.from_settings(REAL, root), SessionStore(root))
    a, _ = app.on_video(None, str(clips["a"]), "fast", Request("session-a"))
    b, _ = app.on_video(None, str(clips["b"]), "fast", Request("session-b"))
    ws_a, ws_b = a.workspace, b.workspace
    assert ws_a is not ws_b and a.workdir != b.workdir
    assert (ws_a.info.width, ws_b.info.width) == (160, 96)
    # A has an object and tracked masks; B has neither
    obj = ws_a.add_object("secret")
    mask = np.zeros((120, 160), bool)
    mask[10:50, 10:50] = True
    for frame_idx in range(3):
        ws_a.store.put(FrameResult(frame_idx, (obj.object_id,), mask[None], np.ones(1, np.float32)))
    assert ws_b.objects == {} and len(ws_b.store) == 0
    assert app.refine(None, Request("session-b")).objects["choices"] == []
    prepare_downloads = ReviewLoop(app).prepare_downloads
    assert prepare_downloads(None, Request("session-b")).files is None
    # the handlers find each tab's own session from its hash, never the other one
    assert app.session(None, Request("session-a")) is a and app.session(None, Request("session-b")) is b
    downloads = prepare_downloads(None, Request("session-a")).files
    assert downloads and all(Path(f).is_relative_to(a.workdir) for f in downloads)
    assert not any(Path(f).is_relative_to(b.workdir) for f in downloads)
    # each video is the session's private copy under a fixed name; the upload's name is nowhere
    assert a.video_path.parent.parent == a.workdir and a.video_path.name == "video.mp4"
    assert not any("pwned" in str(p) or "ünï" in str(p) for p in files_under(root))
    # closing A's tab removes A's files only
    app.store.close("session-a")
    assert not a.workdir.exists() and b.workdir.exists() and b.workspace is ws_b
    app.store.discard(b)  # the state expired
    assert not b.workdir.exists() and len(app.store) == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("holiday.MP4", "video.mp4"),
        ("a b;$(rm -rf ~).mov", "video.mov"),
        ("..mp4", "video.mp4"),
        (".hidden", "video"),
        ("no_extension", "video"),
        ("clip.mp4 ", "video"),
        ("名前.webm", "video.webm"),
        ("x" * 200 + ".mkv", "video.mkv"),
        ("weird.ext ension", "video"),
        ("tricky.mp4\n.txt", "video.txt"),
    ],
)
def test_upload_names_are_never_used_in_paths(tmp_path, name, expected):
    upload = tmp_path / "uploads" / name
    upload.parent.mkdir()
    upload.write_bytes(b"data")
    folder = tmp_path / "session" / "video-001"
    folder.mkdir(parents=True)
    copy = private_copy(upload, folder)
    assert copy == folder / expected and copy.read_bytes() == b"data"
    assert [p.name for p in folder.iterdir()] == [expected]


def test_the_page_removes_a_tabs_files_when_it_closes(tmp_path):
    demo = build_demo(standin_services(tmp_path))
    triggers = [t for d in demo.config["dependencies"] for t in d.get("targets", [])]
    assert any(event == "unload" for _, event in triggers)  # a dropped page connection runs store.unload (marks, never deletes)


# -- disk ---------------------------------------------------------------------------------------
def _fill(folder: Path, megabytes: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "blob.bin").write_bytes(b"\0" * int(megabytes * 1e6))


def test_disk_cap_removes_strays_then_the_longest_idle_tabs(tmp_path):
    store = SessionStore(tmp_path, max_bytes=int(3e6))
    now = time.time()
    idle_old, idle_new, busy, fresh = (store.get(None, key) for key in ("old", "new", "busy", "fresh"))
    for session, idle_for in [(idle_old, 3), (idle_new, 2), (busy, 5), (fresh, 0)]:
        _fill(session.workdir, 1)
        session.last_used = now - idle_for * MIN_IDLE_BEFORE_EVICTION_SECONDS
    busy.tracking = True
    stray = tmp_path / "session-crashed"
    _fill(stray, 1)
    removed = store.sweep(now=now)
    # 5 MB → 3 MB: the stray, then the longest-idle tab that is not tracking
    assert [p.resolve() for p in removed] == [stray.resolve(), idle_old.workdir.resolve()]
    assert idle_old.closed and not idle_new.closed and not busy.closed and not fresh.closed
    assert store.get(None, "old") is not idle_old  # the tab comes back with a fresh, empty session
    store.max_bytes = 1  # only busy and fresh tabs left to take: they stay, the log says so
    store.sweep(now=now)
    assert not busy.closed and not fresh.closed
    store.close_all()


def test_a_running_batch_folder_is_never_swept(tmp_path):
    store = SessionStore(tmp_path, stray_age=0, max_bytes=1)
    running = store.new_folder("api")
    _fill(running, 0.5)
    old = time.time() - 7200
    os.utime(running, (old, old))
    assert store.sweep() == [] and running.exists()
    store.release(running)
    assert store.sweep() == [running] and not running.exists()


# -- launch options --------------------------------------------------------------------------------
def test_launch_defaults_are_private_and_bounded(monkeypatch):
    for name in ("TRACKER_MAX_SECONDS", "TRACKER_MAX_FRAMES", "TRACKER_MAX_UPLOAD", "TRACKER_TEMP_MAX_GB",
                 "GRADIO_ALLOWED_PATHS", "TRACKER_AUTH"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args([])
    options = launch_options(args)
    assert options["share"] is False and options["auth"] is None
    assert "allowed_paths" not in options  # no folder is opened to every visitor
    assert options["max_file_size"] == "1gb"
    assert limits_from(args) == {"max_seconds": 600.0, "max_frames": None, "max_temp_bytes": 20_000_000_000}
    monkeypatch.setenv("TRACKER_MAX_SECONDS", "0")
    monkeypatch.setenv("TRACKER_MAX_FRAMES", "9000")
    monkeypatch.setenv("TRACKER_MAX_UPLOAD", "250MB")
    args = build_parser().parse_args(["--temp-max-gb", "0"])
    assert launch_options(args)["max_file_size"] == "250mb"
    assert limits_from(args) == {"max_seconds": None, "max_frames": 9000, "max_temp_bytes": None}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("500mb", "500mb"), ("2 GB", "2gb"), ("1048576", "1048576b"), ("0", None), ("none", None), ("", None),
     ("lots", "error"), ("-5mb", "error"), ("1.5gb", "error")],
)  # fmt: skip
def test_upload_size_option(value, expected):
    if expected == "error":
        with pytest.raises(InputError, match="--max-upload takes a size"):
            parse_size(value)
    else:
        assert parse_size(value) == expected


def test_temp_folder_must_be_one_gradio_can_serve_from(tmp_path, monkeypatch):
    check_temp_root(Path(tempfile.gettempdir()) / "tracker-webapp")
    check_temp_root(Path.cwd() / "work" / "temp")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="must be inside the system temp folder"):
        check_temp_root(Path("/proc/tracker-temp"))


# -- a launched app, two clients -------------------------------------------------------------------
def _accept_best(self, count: int):
    """``Workspace.accept_best`` for the stand-in: the best frame's distinct candidates."""
    best = self.candidates[0].frame_idx
    for index in [i for i, c in enumerate(self.candidates) if c.frame_idx == best][:count]:
        self.accept_candidate(index)
    return list(self.objects.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_clients_get_only_their_own_results(tmp_path, clips, monkeypatch):
    from tracker.video import probe

    if not hasattr(StandInWorkspace, "accept_best"):
        monkeypatch.setattr(StandInWorkspace, "accept_best", _accept_best, raising=False)
    root = tmp_path / "sessions"
    demo = build_demo(standin_services(root))
    options = launch_options(build_parser().parse_args(["--max-upload", "300kb"]))
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True,
                **{key: options[key] for key in ("share", "auth", "max_file_size", "show_error")})  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        assert str(root) not in " ".join(demo.allowed_paths)
        clients = {name: Client(url, verbose=False, download_files=str(tmp_path / name)) for name in "ab"}
        results: dict[str, tuple] = {}

        def run(name: str) -> None:
            results[name] = clients[name].predict(
                video=handle_file(str(clips[name])), prompt="a disc", api_name="/track"
            )

        threads = [threading.Thread(target=run, args=(name,)) for name in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for name, width in (("a", 160), ("b", 96)):
            overlay, archive = (Path(p) for p in results[name][:2])  # then the summary
            assert overlay.is_relative_to(tmp_path / name) and archive.is_relative_to(tmp_path / name)
            assert probe(overlay).width == width  # each client got the overlay of its own video
        # the server's per-run files are not served directly, to anyone
        server_files = [p for p in files_under(root) if p.suffix in (".zip", ".mp4")]
        assert server_files
        for path in server_files:
            response = httpx.get(f"{url}gradio_api/file={path}", timeout=10)
            assert response.status_code == 403, path
        # nor can a caller make the server read a file it did not upload (raw HTTP: no client upload)
        secret = next(p for p in server_files if p.suffix == ".mp4")
        video = {"path": str(secret), "meta": {"_type": "gradio.FileData"}}
        call = httpx.post(
            f"{url}gradio_api/call/track", json={"data": [video, "a disc", "", "", 1]}, timeout=10
        )
        stream = httpx.get(f"{url}gradio_api/call/track/{call.json()['event_id']}", timeout=30).text
        assert "event: error" in stream and "event: complete" not in stream, stream
        # uploads past --max-upload are refused
        big = tmp_path / "big.mp4"
        big.write_bytes(os.urandom(400_000))
        with pytest.raises(Exception, match="(?i)exceeds|too large|413|size"):
            clients["a"].predict(video=handle_file(str(big)), prompt="a disc", api_name="/track")
        # a file that is not a video: one sentence back, and the server keeps serving
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video\n" * 50)
        with pytest.raises(Exception, match="not a (readable )?video") as refused:
            clients["b"].predict(video=handle_file(str(notes)), prompt="a disc", api_name="/track")
        assert "Traceback" not in str(refused.value) and str(root) not in str(refused.value)
        again = clients["b"].predict(video=handle_file(str(clips["b"])), prompt="a disc", api_name="/track")
        assert probe(Path(again[0])).width == 96
    finally:
        demo.close()
