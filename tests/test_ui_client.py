"""The documented batch endpoint, called with gradio_client against the launched app.

The app is launched in-process on a free port (``prevent_thread_lock=True``). One test uses the
stand-in workspace (checks the plumbing in a second), the other the real models with random
weights at a small processing size.
"""

from __future__ import annotations

import os
import socket
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.standin_workspace import standin_services
from ui.app import build_demo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launched(services):
    demo = build_demo(services)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def check_result(result) -> None:
    overlay, archive, summary = result
    assert Path(overlay).suffix == ".mp4" and Path(overlay).stat().st_size > 0
    members = zipfile.ZipFile(archive).namelist()
    assert "coco.json" in members and "overlay.mp4" in members
    assert summary.startswith("Tracked ") and "The zip holds" in summary, summary


def test_only_track_and_candidates_are_public_and_they_work(tmp_path, small_video):
    demo, url = launched(standin_services(tmp_path / "sessions"))
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        api = client.view_api(print_info=False, return_format="dict")
        assert list(api["named_endpoints"]) == ["/track", "/candidates"]
        assert not api["unnamed_endpoints"]
        summary, rows, best = client.predict(
            video=handle_file(str(small_video)), prompt="red disc", max_candidates=3, api_name="/candidates"
        )
        assert 1 <= len(rows) <= 3 and rows[0]["rank"] == 1 and "frame" in rows[0], rows
        assert summary.startswith(f"{len(rows)} candidate") or "listed" in summary, summary
        assert Path(best).suffix == ".png"
        result = client.predict(
            video=handle_file(str(small_video)), prompt="red disc", negative_prompt="", preset="fast", max_objects=2,
            api_name="/track",
        )  # fmt: skip
        check_result(result)
        with pytest.raises(Exception, match="Type what to follow"):
            client.predict(video=handle_file(str(small_video)), prompt=" ", api_name="/track")
    finally:
        demo.close()


@pytest.mark.slow
def test_track_endpoint_with_random_weights(tmp_path, small_video):
    from tracker.settings import Settings
    from ui.services import Services

    size = int(os.environ.get("TRACKER_IMAGE_SIZE", "256"))
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=size, max_size=256), tmp_path / "sessions"
    )
    demo, url = launched(services)
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        result = client.predict(video=handle_file(str(small_video)), prompt="a red disc", api_name="/track")
        check_result(result)
    finally:
        demo.close()


@pytest.mark.slow
def test_track_endpoint_with_discovery_and_random_weights(tmp_path):
    """/track with discover on: the real path end to end; the summary says what discovery found.

    Random weights decide nothing meaningful, so the test asserts the run, the settings the
    manifest records and the summary's discovery sentence, not what was found.
    """
    import json

    from tests.standins_discovery import entering_scene, write_scene
    from tracker.settings import Settings
    from ui.services import Services

    clip = write_scene(tmp_path / "enters.mp4", entering_scene(), 12)  # a red disc enters on frame 4
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=256, max_size=256), tmp_path / "sessions"
    )
    demo, url = launched(services)
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        result = client.predict(
            video=handle_file(str(clip)), prompt="a red disc", max_objects=3, discover=True, discover_every=2,
            api_name="/track",
        )  # fmt: skip
        check_result(result)
        overlay, archive, summary = result
        manifest = json.loads(zipfile.ZipFile(archive).read("manifest.json"))
        assert manifest["settings"]["discover"] is True and manifest["settings"]["discover_every"] == 2
        assert "Discovery (a check every 2 frames) found " in summary, summary
        kinds = {row["kind"] for row in manifest.get("found") or []}
        assert kinds <= {"accepted", "discovered", "reacquired"} and len(manifest["objects"]) <= 3
        with pytest.raises(Exception, match="discover_every must be a whole number"):
            client.predict(
                video=handle_file(str(clip)), prompt="a red disc", discover=True, discover_every=0.5,
                api_name="/track",
            )  # fmt: skip
    finally:
        demo.close()
