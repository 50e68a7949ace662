"""The whole workflow in a real browser: headless Chromium (Debian's) driven by Playwright.

Upload a clip, type a prompt, Find, pick a candidate, click a point, Track, see the result
video, download the zip — with a screenshot per step in ``docs/screenshots/`` (and in the test's
temp folder). The app runs in-process with random weights at a small processing size.

Run by hand against any running app (e.g. the final check on a real video)::

    python tests/test_browser.py --url http://127.0.0.1:7860 --video clip.mp4 --prompt "a dog" --shots out/
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip
VIEWPORT = {"width": 1360, "height": 900}

logger = logging.getLogger(__name__)


class Flow:
    """One pass through the page; ``shot(name)`` saves the step's section (or the page) as PNG."""

    def __init__(self, page, shots: list[Path], timeout_s: float) -> None:
        self.page = page
        self.shots = shots
        self.timeout_ms = timeout_s * 1000
        for folder in shots:
            folder.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str, selector: str | None = None) -> None:
        target = self.page.locator(selector) if selector else None
        first = self.shots[0] / f"{name}.png"
        if target is not None:
            target.scroll_into_view_if_needed()
            target.screenshot(path=str(first))
        else:
            self.page.screenshot(path=str(first), full_page=True)
        for folder in self.shots[1:]:
            shutil.copy(first, folder / first.name)

    def wait_text(self, selector: str, needle: str, timeout_ms: float | None = None) -> str:
        self.page.wait_for_function(
            "([sel, needle]) => (document.querySelector(sel)?.innerText || '').includes(needle)",
            arg=[selector, needle], timeout=timeout_ms or self.timeout_ms,
        )  # fmt: skip
        return self.page.locator(selector).inner_text()

    def no_error_toast(self) -> None:
        toasts = self.page.locator(".toast-body.error")
        if toasts.count():
            raise AssertionError(f"the page shows an error: {toasts.first.inner_text()}")


def run_workflow(page, url: str, video: Path, prompt: str, shots: list[Path], timeout_s: float = 170) -> dict:
    """Drive every step; returns what was seen (candidate count, frames tracked, zip members)."""
    flow = Flow(page, shots, timeout_s)
    seen: dict = {}
    page.goto(url)
    page.wait_for_selector("#find-btn")
    flow.shot("00-page")

    # 1 · input
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    flow.wait_text("#estimate", "frames")
    page.locator("#prompt input, #prompt textarea").first.fill(prompt)
    flow.shot("01-input", "#step-input")

    # 2 · find: the gallery fills while the frames are ranked
    page.locator("#find-btn").click()
    page.wait_for_selector("#candidates img", timeout=flow.timeout_ms)
    flow.wait_text("#find-status", "Click one")
    seen["candidates"] = page.locator("#candidates img").count()
    flow.shot("02-find", "#step-find")

    # 3 · pick the best candidate, then add a click on the picture
    page.locator("#candidates img").first.click()
    page.wait_for_selector("#object-legend .chip", timeout=flow.timeout_ms)
    flow.wait_text("#refine-status", "Following candidate")
    image = page.locator("#frame-view img")
    before = image.get_attribute("src")
    box = image.bounding_box()
    image.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5})
    page.wait_for_function(
        "([before]) => { const img = document.querySelector('#frame-view img'); return img && img.src !== before; }",
        arg=[before], timeout=flow.timeout_ms,
    )  # fmt: skip
    flow.no_error_toast()
    flow.shot("03-refine", "#step-refine")

    # 4 · track: the overlay streams in while SAM 2 runs
    page.locator("#track-btn").click()
    try:
        flow.wait_text("#track-status", "frame", timeout_ms=flow.timeout_ms)
        flow.shot("04-tracking", "#step-track")
    except Exception:  # a very short clip can finish before the first progress line is seen
        logger.info("tracking finished before a progress screenshot")
    status = flow.wait_text("#track-status", "Done:")
    seen["track_status"] = status
    page.wait_for_function(
        "() => { const v = document.querySelector('#result-video video'); return v && v.readyState >= 2; }",
        timeout=flow.timeout_ms,
    )
    flow.no_error_toast()
    flow.shot("04-track", "#step-track")

    # 5 · review
    flow.wait_text("#review-status", "frames tracked.")
    flow.shot("05-review", "#step-review")

    # 6 · download the zip
    page.wait_for_selector("#download-zip:not([disabled])", timeout=flow.timeout_ms)
    page.wait_for_selector("#downloads a, #downloads .file-name, #downloads td", timeout=flow.timeout_ms)
    with page.expect_download(timeout=flow.timeout_ms) as download_info:
        page.locator("#download-zip").click()
    target = shots[0] / "annotations.zip"
    download_info.value.save_as(str(target))
    seen["zip"] = target
    seen["zip_members"] = zipfile.ZipFile(target).namelist()
    flow.shot("06-download", "#step-download")
    flow.shot("07-whole-page")
    return seen


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def plug_standins(services, **hooks) -> None:
    """Every workspace the app opens gets these stand-in hooks (``session_factory``,
    ``discovery_detector``: see :class:`tracker.workspace.Workspace`) before it is used."""
    opener = services.open_workspace

    def open_with_standins(*args, **kwargs):
        ws = opener(*args, **kwargs)
        for name, hook in hooks.items():
            setattr(ws, name, hook)
        return ws

    services.open_workspace = open_with_standins


def launch_browser(playwright):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.mark.browser
@pytest.mark.slow
def test_whole_workflow_in_a_browser(tmp_path, monkeypatch):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.synthetic import make_video
    from tracker.settings import Settings
    from ui.app import build_demo, launch_style
    from ui.services import Services

    clip = tmp_path / "two_shapes.mp4"
    make_video(clip, num_frames=12, width=256, height=192, fps=8)
    size = int(os.environ.get("TRACKER_IMAGE_SIZE", "256"))
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=size, max_size=256), tmp_path / "sessions"
    )
    demo = build_demo(services)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_style())
    started = time.perf_counter()
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            seen = run_workflow(
                page, f"http://127.0.0.1:{port}/", clip, "red disc", [tmp_path / "shots", SCREENSHOTS]
            )
            browser.close()
    finally:
        demo.close()
    assert seen["candidates"] >= 1
    assert "12 frames tracked" in seen["track_status"]
    assert "overlay.mp4" in seen["zip_members"] and "coco.json" in seen["zip_members"]
    assert time.perf_counter() - started < 180


def stop_and_brush(page, url: str, video: Path, shots: list[Path], timeout_s: float = 60) -> dict:
    """Brush a mask, start tracking, press Stop mid-run, then track again to the end."""
    flow = Flow(page, shots, timeout_s)
    seen: dict = {}
    page.goto(url)
    page.wait_for_selector("#find-btn")
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    flow.wait_text("#estimate", "frames")

    page.get_by_role("tab", name="Brush").click()
    flow.wait_text("#brush-status", "Painting")
    page.wait_for_timeout(500)  # the editor fits the new background to its canvas
    page.locator("#brush-editor button[title=Brush]").click()
    canvas = page.locator("#brush-editor canvas").first.bounding_box()
    cx, cy = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
    page.mouse.move(cx - 30, cy - 10)
    page.mouse.down()
    for step in range(15):
        page.mouse.move(cx - 30 + step * 4, cy - 10 + (step % 4) * 6)
    page.mouse.up()
    page.locator("#brush-apply-btn").click()
    flow.wait_text("#refine-status", "Brushed mask applied")
    flow.shot("brush", "#step-refine")
    page.get_by_role("tab", name="Click").click()

    # a click a quarter of the way in lands a quarter of the way in, in video pixels
    image = page.locator("#frame-view img")
    image.wait_for()
    before = image.get_attribute("src")
    box = image.bounding_box()
    image.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.25})
    page.wait_for_function(
        "([before]) => document.querySelector('#frame-view img')?.src !== before",
        arg=[before],
        timeout=flow.timeout_ms,
    )

    page.locator("#track-btn").click()
    flow.wait_text("#track-status", "frame 3")
    page.locator("#stop-btn").click()
    seen["stopped"] = flow.wait_text("#track-status", "Stopped.")
    page.wait_for_function(
        "() => { const v = document.querySelector('#result-video video'); return v && v.readyState >= 2; }",
        timeout=flow.timeout_ms,
    )
    seen["review_after_stop"] = flow.wait_text("#review-status", "frames tracked.")
    page.wait_for_selector("#download-zip:not([disabled])", timeout=flow.timeout_ms)
    flow.shot("stopped", "#step-track")

    page.locator("#track-btn").click()
    seen["tracked_again"] = flow.wait_text("#track-status", "Done:")
    flow.no_error_toast()
    return seen


@pytest.mark.browser
def test_brush_stop_and_track_again_in_a_browser(tmp_path, monkeypatch):
    """The same page around the stand-in workspace: quick, and slow enough per frame to stop."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.standin_workspace import StandInWorkspace, standin_services
    from tests.synthetic import make_video
    from ui.app import build_demo, launch_style

    monkeypatch.setattr(StandInWorkspace, "track_delay", 0.4)
    clip = tmp_path / "shapes.mp4"
    make_video(clip, num_frames=16, width=256, height=192, fps=8)
    demo = build_demo(standin_services(tmp_path / "sessions", streaming=True))
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_style())
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            seen = stop_and_brush(page, f"http://127.0.0.1:{port}/", clip, [tmp_path / "shots"])
            (session,) = demo.session_store.live()  # before the tab closes and takes it along
            (prompt,) = session.workspace.prompts()
            info = session.workspace.info
            browser.close()
    finally:
        demo.close()
    (x, y) = prompt.points[0]
    assert abs(x - info.width / 4) <= 2 and abs(y - info.height / 4) <= 2
    kept = int(seen["stopped"].split("The ")[1].split(" frames")[0])
    assert 0 < kept < 16
    assert f"{kept} of 16 frames tracked" in seen["review_after_stop"]
    assert "16 frames tracked" in seen["tracked_again"]


def track_with_discovery(page, url: str, video: Path, shots: list[Path], timeout_s: float = 90) -> dict:
    """Find, pick the first candidate, turn on "Find new ones while tracking" (every 2 frames), track."""
    flow = Flow(page, shots, timeout_s)
    try:
        return _track_with_discovery(page, url, video, flow)
    except Exception as error:
        page.screenshot(path=str(shots[0] / "failed.png"), full_page=True)
        said = {
            sel: page.locator(sel).inner_text() for sel in ("#find-status", "#refine-status", "#track-status")
        }
        raise AssertionError(f"{error}; the page says {said}") from None


def _track_with_discovery(page, url: str, video: Path, flow: Flow) -> dict:
    page.goto(url)
    page.wait_for_selector("#find-btn")
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    flow.wait_text("#estimate", "frames")
    page.locator("#prompt input, #prompt textarea").first.fill("red")
    page.locator("#negative-prompt input, #negative-prompt textarea").first.fill("blue")
    page.locator("#find-btn").click()
    page.wait_for_selector("#candidates img", timeout=flow.timeout_ms)
    page.locator("#candidates img").first.click()
    page.wait_for_selector("#object-legend .chip", timeout=flow.timeout_ms)
    page.locator("#discover input[type=checkbox]").check()
    page.locator("#discover-every input").fill("2")
    page.locator("#track-btn").click()
    status = flow.wait_text("#track-status", "Done:")
    flow.no_error_toast()
    flow.wait_text("#review-status", "frames tracked.")
    flow.shot("discovery", "#step-track")
    return {
        "status": status,
        "chips": page.locator("#object-legend .chip").all_inner_texts(),
        "review": page.locator("#step-review").inner_text(),
    }


@pytest.mark.browser
@pytest.mark.slow
def test_discovery_switch_in_a_browser(tmp_path):
    """The switch with the real models (random weights) and a stand-in detector that sees colour.

    Random weights cannot tell a red disc from the background, so discovery's detector is the
    named stand-in (tests/standins_discovery.py). The random-weight SAM 2 mask of the accepted
    candidate is a grid over much of the frame and can cover the entering red disc (then it is
    "matched", nothing new), so the test asserts that the switch and the interval reach the run
    (checks every 2 frames), not that a new object is found; when one is, the status line names it.
    """
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.standins_discovery import StandInComponentDetector, entering_scene, write_scene
    from tracker.settings import Settings
    from ui.app import build_demo, launch_style
    from ui.services import Services

    clip = write_scene(tmp_path / "enters.mp4", entering_scene(), 16)
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=256, max_size=256), tmp_path / "sessions"
    )
    plug_standins(services, discovery_detector=lambda workspace: StandInComponentDetector("red", "blue"))
    demo = build_demo(services)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_style())
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport=VIEWPORT)
            seen = track_with_discovery(page, f"http://127.0.0.1:{port}/", clip, [tmp_path / "shots"])
            (session,) = demo.session_store.live()  # before the tab closes and takes it along
            discovery = session.workspace.last_discovery
            found = [r for r in session.workspace.found if r.kind != "accepted"]
            browser.close()
    finally:
        demo.close()
    assert "16 frames tracked" in seen["status"], seen
    assert discovery is not None and discovery.config.every == 2
    assert len(discovery.reports) >= 3, discovery.reports  # 16 frames, a check every 2
    assert ("Found while tracking" in seen["status"]) == bool(found), seen
    assert len(seen["chips"]) == 1 + sum(r.kind == "discovered" for r in found), seen


def find_while_tracking(page, url: str, video: Path, shots: list[Path], demo, timeout_s: float = 40) -> dict:
    """A new user's pass with the switch on: Find "red" (not "blue"), go to frame 0, click the red
    disc there, turn on "Find new ones while tracking" (every 2 frames), Track, read what the page
    says, then review: the new object's flags, Next flagged until its "new" flag."""
    flow = Flow(page, shots, timeout_s)
    try:
        return _find_while_tracking(page, url, video, flow, demo)
    except Exception as error:
        page.screenshot(path=str(flow.shots[0] / "failed.png"), full_page=True)
        said = {
            sel: page.locator(sel).inner_text()
            for sel in ("#refine-status", "#track-status", "#review-flags")
        }
        raise AssertionError(f"{error}; the page says {said}") from None


def _slider(page, elem_id: str) -> int:
    return int(float(page.locator(f"#{elem_id} input[type=number]").input_value()))


def _find_while_tracking(page, url: str, video: Path, flow: Flow, demo) -> dict:
    from tests.standins_discovery import HEIGHT, WIDTH, arriving_scene

    started = time.perf_counter()
    seen: dict = {"times": {}}

    def stamp(name: str) -> None:  # seconds since the start, per step (what the test's time goes to)
        seen["times"][name] = round(time.perf_counter() - started, 1)

    page.goto(url)
    page.wait_for_selector("#find-btn")
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    flow.wait_text("#estimate", "frames")
    page.locator("#prompt input, #prompt textarea").first.fill("red")
    page.locator("#negative-prompt input, #negative-prompt textarea").first.fill("blue")
    page.locator("#find-btn").click()
    page.wait_for_selector("#candidates img", timeout=flow.timeout_ms)
    flow.wait_text("#find-status", "Click one")
    stamp("find")

    # step 3: back to frame 0 with the keys, then a click on the red disc there
    page.locator("#step-refine").scroll_into_view_if_needed()
    page.locator("#refine-status").click()  # focus on the page, not in a field
    while (frame := _slider(page, "frame-slider")) > 0:
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(
            "([sel, v]) => Number(document.querySelector(sel)?.value) < v",
            arg=["#frame-slider input[type=number]", frame], timeout=flow.timeout_ms,
        )  # fmt: skip
    image = page.locator("#frame-view img")
    before = image.get_attribute("src")
    box = image.bounding_box()
    x, y = arriving_scene()[0].path(0)
    image.click(position={"x": box["width"] * x / WIDTH, "y": box["height"] * y / HEIGHT})
    page.wait_for_selector("#object-legend .chip", timeout=flow.timeout_ms)
    page.wait_for_function(
        "([before]) => document.querySelector('#frame-view img')?.src !== before",
        arg=[before], timeout=flow.timeout_ms,
    )  # fmt: skip
    flow.no_error_toast()
    stamp("click")

    # step 4: the switch, every 2 frames, Track
    page.locator("#discover input[type=checkbox]").check()
    page.locator("#discover-every input").fill("2")
    page.locator("#track-btn").click()
    seen["status"] = flow.wait_text("#track-status", "Done:")
    flow.no_error_toast()
    page.wait_for_function(  # step 3's object list takes in what was found
        "() => document.querySelectorAll('#object-legend .chip').length >= 2", timeout=flow.timeout_ms
    )
    seen["chips"] = page.locator("#object-legend .chip").all_inner_texts()
    seen["legend"] = page.locator("#object-legend").inner_text()
    stamp("track")

    # step 5: the flags of the new object; Next flagged until its "new" flag
    flow.wait_text("#review-flags", "Clicks on the picture go to")
    (session,) = demo.session_store.live()
    ws = session.workspace
    new = [obj for oid, obj in ws.objects.items() if oid != 1]
    assert new, f"no object found while tracking: {seen}"
    seen["new_object"] = new[0]
    page.locator("#flag-filter input").click()
    page.get_by_role("option", name=f"flags of {new[0].object_id} · {new[0].name}").click()
    page.locator("#review-slider").scroll_into_view_if_needed()
    for _ in range(8):
        page.locator("#next-flag-btn").click()
        page.wait_for_timeout(300)
        text = page.locator("#review-flags").inner_text()
        if "New object found here" in text:
            break
    seen["flag_text"] = flow.wait_text("#review-flags", "New object found here", timeout_ms=5000)
    seen["review_frame"] = _slider(page, "review-slider")
    seen["review_status"] = page.locator("#review-status").inner_text()
    page.wait_for_timeout(500)  # the review picture of that frame
    flow.no_error_toast()
    _close_toasts(page)
    flow.shot("discovery-flags", "#step-review")
    stamp("review")

    # the overlay at the end of the video shows both tracks
    page.locator("#step-track").scroll_into_view_if_needed()
    page.evaluate(
        """() => new Promise((done) => { const v = document.querySelector('#result-video video');
        if (!v) return done(); v.pause(); v.addEventListener('seeked', () => done(), {once: true});
        v.currentTime = Math.max(0, (v.duration || 3) - 0.3); setTimeout(done, 3000); })"""
    )
    flow.shot("discovery", "#step-track")

    # the downloads: flags and the overlay drawn again with the new object
    page.wait_for_selector("#download-zip:not([disabled])", timeout=flow.timeout_ms)
    flow.wait_text("#download-status", "flags.csv")
    with page.expect_download(timeout=flow.timeout_ms) as download_info:
        page.locator("#download-zip").click()
    seen["zip"] = flow.shots[0] / "annotations.zip"
    download_info.value.save_as(str(seen["zip"]))
    stamp("download")
    return seen


def _close_toasts(page) -> None:
    for button in page.locator(".toast-close").all():
        try:
            button.click(timeout=1000)
        except Exception:  # it closed by itself meanwhile
            pass


@pytest.mark.browser
@pytest.mark.slow
def test_discovery_finds_a_new_object_in_a_browser(tmp_path):
    """A second red disc enters; the page names it, tracks it, and the review lands on its flag.

    The real app, handlers, discovery controller, flags and exports; the models' work is done
    by named stand-ins (tests/standins_discovery.py), because random weights cannot follow a
    disc: tracking is the colour-blob session (``Workspace.session_factory``), discovery's
    detector the colour-component one (``Workspace.discovery_detector``). Find and the flags'
    CLIP scores still run the real models on random weights.
    """
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.standins_discovery import (
        StandInBlobSession,
        StandInComponentDetector,
        arriving_scene,
        render_scene,
        write_scene,
    )
    from tracker.settings import Settings
    from ui.app import build_demo, launch_style
    from ui.services import Services

    frames_count = 24
    clip = write_scene(tmp_path / "arrives.mp4", arriving_scene(), frames_count)
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=256, max_size=256), tmp_path / "sessions"
    )
    plug_standins(
        services,
        session_factory=StandInBlobSession.of,
        discovery_detector=lambda workspace: StandInComponentDetector("red", "blue"),
    )
    demo = build_demo(services)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_style())
    started = time.perf_counter()
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            seen = find_while_tracking(
                page, f"http://127.0.0.1:{port}/", clip, [tmp_path / "shots", SCREENSHOTS], demo
            )
            (session,) = demo.session_store.live()
            ws = session.workspace
            found = [r for r in ws.found_records() if r.kind == "discovered"]
            masks = {f: ws.store.mask(f, seen["new_object"].object_id) for f in range(frames_count)}
            browser.close()
    finally:
        demo.close()
    elapsed = time.perf_counter() - started
    new = seen["new_object"]
    (record,) = found
    # where the new disc's first sliver shows (frame 6) or the next frame (the sliver can blur away)
    assert record.object_id == new.object_id and record.first_frame in (6, 7)
    assert f"Found while tracking: #{new.object_id} ({new.name}) found at 0:01, score " in seen["status"]
    assert "Next flagged" in seen["status"], seen["status"]
    assert len(seen["chips"]) == 2 and any(new.name in chip for chip in seen["chips"]), seen["chips"]
    # its track: in the results from where it entered, on the disc
    _, truth = render_scene(arriving_scene(), frames_count)
    present = [f for f, m in masks.items() if m is not None and m.any()]
    assert present[0] == record.first_frame and present[-1] == frames_count - 1
    overlap = masks[frames_count - 1] & truth[frames_count - 1][2]
    assert overlap.sum() >= 0.8 * truth[frames_count - 1][2].sum()
    # the review landed on its flag and says what it is
    assert seen["review_frame"] == record.frame
    assert f"Frame {record.frame} is flagged" in seen["flag_text"]
    assert f"new object ({new.object_id} · {new.name})" in seen["flag_text"], seen["flag_text"]
    # the downloads: the flag in flags.json, the new object drawn in the overlay
    with zipfile.ZipFile(seen["zip"]) as archive:
        flags = json.loads(archive.read("flags.json"))
        overlay = archive.read("overlay.mp4")
    flagged = flags["flags"] if isinstance(flags, dict) else flags
    assert any(f["reason"] == "discovered" and f["object_id"] == new.object_id for f in flagged), flagged
    drawn = _overlay_frame(overlay, tmp_path, frames_count - 1)
    raw, _ = render_scene(arriving_scene(), frames_count)
    disc = truth[frames_count - 1][2]
    tint = np.abs(drawn.astype(int) - raw[frames_count - 1].astype(int)).sum(-1)
    assert tint[disc].mean() > 3 * max(tint[~(disc | truth[frames_count - 1][0])].mean(), 1.0)
    assert elapsed < 60, f"{elapsed:.0f} s"
    print(f"discovery in a browser: {elapsed:.1f} s; {seen['times']}")


def _shade_scene() -> list:
    """Five still discs in a row, the looks of tests/test_find_exemplars.py (A … E, left to right)."""
    from tests.standins_discovery import Disc
    from tests.test_find_exemplars import LOOKS

    return [
        Disc(colour, 10, lambda f, x=14 + 25 * i: (x, 48)) for i, (colour, _) in enumerate(LOOKS.values())
    ]


class StandInShadeFinder:
    """Find's finder, in a moment: the discs of :func:`_shade_scene` on frame 0 as candidates,
    embedded by the colour stand-in for CLIP (``tests.test_find_exemplars.ENCODER``) and
    scored for "red" as Find scores a crop, best text score first."""

    def find(self, reader, prompt, negative_prompt=None, cancel=None):
        from tests.standins_discovery import render_scene
        from tests.test_find_exemplars import ENCODER, look
        from tracker.candidates.finder import FinderEvent
        from tracker.masks import mask_box
        from tracker.types import Candidate

        _, truth = render_scene(_shade_scene(), 1)
        found = []
        for name, mask in zip("ABCDE", truth[0], strict=True):
            embedding = look(name)
            score = float(100.0 * embedding @ ENCODER.text(prompt))
            found.append(
                Candidate(0, 0.0, mask, mask_box(mask), score, area=int(mask.sum()), embedding=embedding)
            )
        found.sort(key=lambda c: -c.score)
        yield FinderEvent("done", 1.0, "done", found, new_frame=0)


def _shown(page) -> list[str]:
    """The gallery's candidates as the page captions them, named A … E by their text score
    (the caption's "(text …)" once the looks moved the score, else its score)."""
    from tests.test_find_exemplars import ENCODER, look

    text_scores = {name: round(float(100.0 * look(name) @ ENCODER.text("red")), 1) for name in "ABCDE"}
    names = []
    for caption in page.locator("#candidates .caption-label").all_inner_texts():
        match = re.search(r"\(text (-?[\d.]+)\)", caption) or re.search(r"score (-?[\d.]+)", caption)
        assert match, caption
        value = float(match.group(1))
        names.append(min(text_scores, key=lambda n: abs(text_scores[n] - value)))
    return names


def more_like_and_reject(page, url: str, video: Path, shots: list[Path], timeout_s: float = 30) -> dict:
    """Find "red"; click A (4th by text) → object 1; Find more like this; click B (pure red) →
    object 2; Not this one. Returns what the gallery, the status lines and the objects showed."""
    flow = Flow(page, shots, timeout_s)
    try:
        return _more_like_and_reject(page, url, video, flow)
    except Exception as error:
        page.screenshot(path=str(flow.shots[0] / "failed.png"), full_page=True)
        said = {sel: page.locator(sel).inner_text() for sel in ("#find-status", "#refine-status")}
        raise AssertionError(f"{error}; the page says {said}") from None


HIGHLIGHT = "() => [...document.querySelectorAll('#candidates .thumbnail-item')].map(e => e.classList.contains('selected'))"


def _wait_chips(page, count: int, flow: Flow) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('#object-legend .chip').length === n",
        arg=count,
        timeout=flow.timeout_ms,
    )


def _more_like_and_reject(page, url: str, video: Path, flow: Flow) -> dict:
    seen: dict = {}
    captions = "#candidates .caption-label"
    page.goto(url)
    page.wait_for_selector("#find-btn")
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    flow.wait_text("#estimate", "frames")
    page.locator("#prompt input, #prompt textarea").first.fill("red")
    page.locator("#find-btn").click()
    flow.wait_text("#find-status", "Click one")
    seen["found"] = _shown(page)

    # A, the 4th by its text score, becomes object 1
    page.locator("#candidates img").nth(seen["found"].index("A")).click()
    _wait_chips(page, 1, flow)
    flow.wait_text("#candidates", "✓ object 1")
    seen["picked"] = page.locator("#refine-status").inner_text()

    # Find more like this: A's look-alikes first
    page.locator("#more-like-btn").click()
    seen["more_status"] = flow.wait_text("#find-status", "likeness")
    page.wait_for_function(  # the gallery redrawn: the object's candidate first
        "() => (document.querySelector('#candidates .caption-label')?.innerText || '').includes('✓ object 1')",
        timeout=flow.timeout_ms,
    )
    seen["more"] = _shown(page)
    page.wait_for_timeout(300)  # the highlight's update follows the gallery's
    seen["more_highlight"] = page.evaluate(HIGHLIGHT)
    seen["more_captions"] = page.locator(captions).all_inner_texts()
    flow.no_error_toast()
    _close_toasts(page)
    page.mouse.move(0, 0)  # no hover frame on the clicked place
    flow.shot("find-more-like", "#step-find")

    # B, the pure red, becomes object 2; then "Not this one"
    page.locator("#candidates img").nth(seen["more"].index("B")).click()
    _wait_chips(page, 2, flow)
    flow.wait_text("#candidates", "✓ object 2")
    page.locator("#reject-candidate-btn").click()
    seen["reject_status"] = flow.wait_text("#find-status", "rejected")
    _wait_chips(page, 1, flow)
    page.wait_for_function(
        "() => document.querySelectorAll('#candidates .caption-label').length === 4", timeout=flow.timeout_ms
    )
    seen["rejected"] = _shown(page)
    seen["rejected_captions"] = page.locator(captions).all_inner_texts()
    seen["chips"] = page.locator("#object-legend .chip").all_inner_texts()
    page.wait_for_timeout(300)
    seen["reject_highlight"] = page.evaluate(HIGHLIGHT)
    flow.no_error_toast()
    # the gallery still takes clicks: the last one (E) becomes object 2
    page.locator("#candidates img").nth(3).click()
    _wait_chips(page, 2, flow)
    seen["after_highlight"] = page.evaluate(HIGHLIGHT)
    return seen


@pytest.mark.browser
@pytest.mark.slow
def test_more_like_this_and_not_this_one_in_a_browser(tmp_path, monkeypatch):
    """Step 2's "Find more like this" and "Not this one", clicked as a person would.

    Five still discs: A … E of tests/test_find_exemplars.py (A an orange red, B pure red, C like
    A, D like B, E blue). Random weights make CLIP's scores noise, so Find's finder is a named
    stand-in (:class:`StandInShadeFinder`: the discs as candidates, scored and embedded by the
    colour stand-in for CLIP) and SAM 2's session the colour-blob one (``Workspace.session_factory``);
    the workspace, its exemplar ranking, the handlers and the page are the real ones.
    """
    playwright_api = pytest.importorskip("playwright.sync_api")
    import tracker.engine
    from tests.standins_discovery import StandInBlobSession, write_scene
    from tracker.settings import Settings
    from ui.app import build_demo, launch_style
    from ui.services import Services

    monkeypatch.setattr(tracker.engine, "build_finder", lambda *args: StandInShadeFinder())
    clip = write_scene(tmp_path / "shades.mp4", _shade_scene(), 6)
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=256, max_size=256), tmp_path / "sessions"
    )
    plug_standins(services, session_factory=StandInBlobSession.of)
    demo = build_demo(services)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_style())
    started = time.perf_counter()
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport=VIEWPORT)
            seen = more_like_and_reject(
                page, f"http://127.0.0.1:{port}/", clip, [tmp_path / "shots", SCREENSHOTS]
            )
            (session,) = demo.session_store.live()
            objects = {oid: obj.name for oid, obj in session.workspace.objects.items()}
            browser.close()
    finally:
        demo.close()
    elapsed = time.perf_counter() - started
    assert seen["found"] == ["B", "D", "C", "A", "E"], seen  # by the text score for "red"
    assert "Following candidate #4 as red" in seen["picked"], seen
    # more like A: its own candidate first, then C (its look-alike); scores as they were
    assert seen["more"] == ["A", "C", "D", "B", "E"], seen
    assert "likeness to red" in seen["more_status"], seen
    assert seen["more_captions"][0].startswith("#1 · ✓ object 1 · score 81.6 ·")
    assert not any("(text" in caption for caption in seen["more_captions"]), seen
    # the highlight moved with the clicked candidate (#4 → #1): "Not this one" now would mean A
    assert seen["more_highlight"] == [True, False, False, False, False], seen
    # not B: it and object 2 (made from it) are gone; D, B's look-alike, ranks below A's
    assert "Candidate #4 rejected" in seen["reject_status"] and "Removed red 2" in seen["reject_status"], seen
    assert seen["rejected"] == ["C", "A", "D", "E"], seen
    assert "✓ object 1" in seen["rejected_captions"][1], seen
    assert not any(seen["reject_highlight"]), seen  # nothing selected: the rejected one is gone
    d = seen["rejected_captions"][2]
    score, text_score = (float(v) for v in re.search(r"score ([\d.]+) \(text ([\d.]+)\)", d).groups())
    assert score < text_score - 10, d  # penalised, the text score beside it
    assert len(seen["chips"]) == 1 and "red" in seen["chips"][0], seen
    assert seen["after_highlight"] == [False, False, False, True], seen
    assert objects == {1: "red", 2: "red 2"}  # 2 is E, clicked after the rejection
    assert elapsed < 60, f"{elapsed:.0f} s"
    print(f"more like this / not this one in a browser: {elapsed:.1f} s")


def _overlay_frame(data: bytes, folder: Path, index: int) -> np.ndarray:
    from tracker.video import VideoReader, probe

    path = folder / "overlay-from-zip.mp4"
    path.write_bytes(data)
    reader = VideoReader(probe(path))
    try:
        return reader.get(index)
    finally:
        reader.close()


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description="Drive a running app through the whole workflow.")
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--shots", type=Path, required=True, help="folder for the screenshots and the zip")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for any one step")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    started = time.perf_counter()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
        seen = run_workflow(page, args.url, args.video, args.prompt, [args.shots], args.timeout)
        browser.close()
    print({k: v for k, v in seen.items() if k != "zip_members"}, f"{time.perf_counter() - started:.0f} s")
    print("zip:", ", ".join(seen["zip_members"][:12]), "…" if len(seen["zip_members"]) > 12 else "")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
