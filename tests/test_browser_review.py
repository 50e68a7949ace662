"""The review loop in a real browser: timeline, flagged frames, a fix, a partial re-track, keys.

Upload → Find → pick → Track → the timeline appears → import annotations with a planted fault
(a disc that teleports at frame JUMP_AT) → **Next flagged** (flags of the imported object) lands
on that frame and says why → a click on the picture fixes it → **Re-track changes** re-tracks a
few frames only → the keyboard steps frames, switches the click mode and undoes. Headless
Chromium (Debian's) driven by Playwright; the app runs in-process with random weights at 256 px.
Screenshots go to ``docs/screenshots/review-*.png``.
"""

from __future__ import annotations

import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.test_browser import SCREENSHOTS, VIEWPORT, Flow, free_port, launch_browser

W, H, N = 256, 192, 12
JUMP_AT = 6


def slider_value(page, elem_id: str) -> int:
    return int(float(page.locator(f"#{elem_id} input[type=number]").input_value()))


def wait_slider(flow: Flow, elem_id: str, value: int) -> None:
    flow.page.wait_for_function(
        "([sel, value]) => Number(document.querySelector(sel)?.value) === value",
        arg=[f"#{elem_id} input[type=number]", value], timeout=flow.timeout_ms,
    )  # fmt: skip


def wait_src_change(flow: Flow, selector: str, before: str | None) -> str:
    flow.page.wait_for_function(
        "([sel, before]) => { const img = document.querySelector(sel); return img && img.src && img.src !== before; }",
        arg=[selector, before], timeout=flow.timeout_ms,
    )  # fmt: skip
    return flow.page.locator(selector).get_attribute("src")


def close_toasts(page) -> None:
    """Screenshots without the corner messages."""
    for button in page.locator(".toast-close").all():
        try:
            button.click(timeout=1000)
        except Exception:  # it closed by itself meanwhile
            pass
    page.wait_for_function("() => !document.querySelector('.toast-body')", timeout=5000)


def review_loop(
    page, url: str, video: Path, annotations: Path, shots: list[Path], demo, timeout_s: float = 90
) -> dict:
    flow = Flow(page, shots, timeout_s)
    seen: dict = {}
    page.goto(url)
    page.wait_for_selector("#find-btn")
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    flow.wait_text("#estimate", "frames")
    page.locator("#prompt input, #prompt textarea").first.fill("red disc")
    page.locator("#find-btn").click()
    page.wait_for_selector("#candidates img", timeout=flow.timeout_ms)
    flow.wait_text("#find-status", "Click one")
    page.locator("#candidates img").first.click()
    flow.wait_text("#refine-status", "Following candidate")
    page.locator("#track-btn").click()
    flow.wait_text("#track-status", "Done:")

    # the timeline appears once the run is checked
    page.wait_for_selector("#review-timeline img", timeout=flow.timeout_ms)
    flow.wait_text("#review-flags", "Clicks on the picture go to")
    flow.no_error_toast()
    flow.shot("review-01-timeline", "#step-review")

    # import annotations with a planted fault; they become object 2
    with page.expect_file_chooser() as chooser:
        page.locator("#import-annotations").click()
    chooser.value.set_files(str(annotations))
    flow.wait_text("#refine-status", "Imported")
    page.wait_for_function(
        "() => document.querySelector('#review-timeline img')?.naturalHeight > 60", timeout=flow.timeout_ms
    )  # two bands now
    flow.wait_text("#download-status", "flags.csv")
    seen["download_status"] = page.locator("#download-status").inner_text()

    # Next flagged, for the imported object: the slider moves to the planted frame and says why
    page.locator("#flag-filter input").click()
    page.get_by_role("option", name="flags of 2 · imported 1").click()
    page.locator("#review-slider").scroll_into_view_if_needed()
    page.locator("#next-flag-btn").click()
    wait_slider(flow, "review-slider", JUMP_AT)
    seen["flag_text"] = flow.wait_text("#review-flags", f"Frame {JUMP_AT} is flagged")
    flow.no_error_toast()
    close_toasts(page)
    flow.shot("review-02-flagged", "#step-review")

    # fix: a click on the picture, where the disc really is, goes to object 2 on this frame
    (session,) = demo.session_store.live()
    ws = session.workspace
    before_fix = {f: ws.store.mask(f, 2).copy() for f in range(N)}
    image = page.locator("#review-view img")
    src = image.get_attribute("src")
    box = image.bounding_box()
    x, y = planted_center(JUMP_AT)
    image.click(position={"x": box["width"] * x / W, "y": box["height"] * y / H})
    src = wait_src_change(flow, "#review-view img", src)
    seen["fix_prompts"] = [(p.object_id, p.frame_idx, p.labels) for p in ws.prompts()]
    flow.shot("review-03-fix", "#step-review")

    # re-track only what the fix changes
    timeline_src = page.locator("#review-timeline img").get_attribute("src")
    page.locator("#retrack-btn").click()
    seen["retrack_status"] = flow.wait_text("#review-status", "Re-tracked")
    wait_src_change(flow, "#review-timeline img", timeline_src)
    flow.no_error_toast()
    seen["rewritten"] = sorted(set(ws.last_retrack_frames))
    seen["changed"] = [f for f in range(N) if not np.array_equal(ws.store.mask(f, 2), before_fix[f])]
    flow.shot("review-04-retracked", "#step-review")

    # the downloads follow: the zip has the flags
    flow.wait_text("#download-status", "flags.csv")
    page.wait_for_selector("#download-zip:not([disabled])", timeout=flow.timeout_ms)
    with page.expect_download(timeout=flow.timeout_ms) as download_info:
        page.locator("#download-zip").click()
    target = shots[0] / "annotations.zip"
    download_info.value.save_as(str(target))
    seen["zip_members"] = zipfile.ZipFile(target).namelist()
    close_toasts(page)
    flow.shot("review-06-downloads", "#step-download")

    # keys: with step 5 on screen, . and , step its frames; n / p switch the click mode; u undoes
    page.locator("#review-status").click()  # focus on the page, not in a field
    page.keyboard.press(".")
    wait_slider(flow, "review-slider", JUMP_AT + 1)
    page.keyboard.press("ArrowLeft")
    wait_slider(flow, "review-slider", JUMP_AT)
    page.keyboard.press("n")
    page.wait_for_function(
        "() => document.querySelector('#click-mode input[value=negative]')?.checked", timeout=flow.timeout_ms
    )
    seen["mode_after_n"] = session.mode
    page.keyboard.press("p")
    page.wait_for_function(
        "() => document.querySelector('#review-click-mode input[value=positive]')?.checked",
        timeout=flow.timeout_ms,
    )
    prompts = len(ws.prompts())
    page.keyboard.press("u")
    page.wait_for_function(
        "() => (document.querySelector('#refine-status')?.innerText || '').length > 0",
        timeout=flow.timeout_ms,
    )
    deadline = time.monotonic() + timeout_s
    while len(ws.prompts()) == prompts and time.monotonic() < deadline:
        time.sleep(0.1)
    seen["prompts_after_undo"] = (prompts, len(ws.prompts()))
    flow.no_error_toast()
    close_toasts(page)
    flow.shot("review-05-keys", "#step-review")
    page.keyboard.press("Control+y")
    while len(ws.prompts()) != prompts and time.monotonic() < deadline:
        time.sleep(0.1)
    seen["prompts_after_redo"] = len(ws.prompts())

    # with step 3 on screen the same keys step its frame
    page.locator("#step-refine").scroll_into_view_if_needed()
    page.mouse.wheel(0, 1)  # the page settles its scroll position
    start = slider_value(page, "frame-slider")
    page.keyboard.press("ArrowRight")
    wait_slider(flow, "frame-slider", start + 1)
    seen["refine_frames"] = (start, slider_value(page, "frame-slider"))
    flow.no_error_toast()
    return seen


def planted_center(frame: int) -> tuple[float, float]:
    """Where the planted disc of :func:`tests.test_ui_review.planted_masks` is on ``frame``."""
    return W * 0.15 + frame * W / 80 + (W / 3 if frame >= JUMP_AT else 0), H / 2


@pytest.mark.browser
@pytest.mark.slow
def test_review_loop_in_a_browser(tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.synthetic import make_video
    from tests.test_ui_review import planted_zip
    from tracker.settings import Settings
    from ui.app import build_demo, launch_style
    from ui.services import Services

    clip = tmp_path / "two_shapes.mp4"
    make_video(clip, num_frames=N, width=W, height=H, fps=8)
    annotations = planted_zip(tmp_path / "planted", W, H, N, JUMP_AT)
    size = int(os.environ.get("TRACKER_IMAGE_SIZE", "256"))
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=size, max_size=256), tmp_path / "sessions"
    )
    demo = build_demo(services)
    # untrained masks never agree with the old ones by themselves: stop 2 frames past the fix
    demo.review_loop.agree_iou, demo.review_loop.agree_frames = 0.0, 2
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_style())
    started = time.perf_counter()
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            seen = review_loop(
                page, f"http://127.0.0.1:{port}/", clip, annotations, [tmp_path / "shots", SCREENSHOTS], demo
            )
            browser.close()
    finally:
        demo.close()
    elapsed = time.perf_counter() - started
    assert "too_fast" not in seen["flag_text"] and "jumped" in seen["flag_text"]  # people's words
    assert (2, JUMP_AT, [1]) in seen["fix_prompts"]
    count = int(re.search(r"Re-tracked (\d+) of 12 frames", seen["retrack_status"]).group(1))
    assert count == len(seen["rewritten"]) < N
    assert seen["rewritten"] == list(range(JUMP_AT - 2, JUMP_AT + 3))
    assert set(seen["changed"]) <= set(seen["rewritten"]) and JUMP_AT + 1 in seen["changed"]
    assert {"flags.json", "flags.csv", "coco.json"} <= set(seen["zip_members"])
    assert seen["mode_after_n"] == "negative"
    before, after = seen["prompts_after_undo"]
    assert after == before - 1  # the fix's click was the last edit: undo takes its prompt back
    assert seen["prompts_after_redo"] == before
    assert seen["refine_frames"] == (JUMP_AT, JUMP_AT + 1)
    assert elapsed < 120, f"{elapsed:.0f} s"
