"""What step 5 looks like: the timeline strip, the loop's components, their wiring, CSS and keys.

:func:`render_timeline` draws the strip (present / absent / flagged per object, the codes of
:func:`tracker.flags.timeline`) and :func:`timeline_hit` maps a click on it back to a frame and a
row; :func:`build_timeline`, :func:`build_tools` and :func:`build_import` make the components,
:func:`wire` connects them to a :class:`ui.review.ReviewLoop` (the handlers), and :data:`CSS` /
:data:`SHORTCUTS_HEAD` give the page its look and keys. ``ui.review`` re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tracker.flags import FLAGGED, PRESENT

from . import text
from .gpu import gpu

if TYPE_CHECKING:
    from .review import ReviewLoop

EVERY_OBJECT = 0  # the "Flags of" choice that means all objects

# The strip: drawn wider than it is ever shown, because Gradio maps a click on a picture to its
# pixels only for pictures shown at their size or smaller.
STRIP_WIDTH = 1600
LABEL_WIDTH = 44
ROW_HEIGHT = 20
ROW_GAP = 6
MARKER = 9  # room above each band for the flags' triangles
PAD = 4
ABSENT_COLOR = (226, 232, 240)
FLAG_COLOR = (220, 38, 38)
CURSOR_COLOR = (15, 23, 42)
LABEL_COLOR = (71, 85, 105)

HELP_TOOLS = (
    "Click on the picture to fix this frame (box and brush: **Fix this frame**), then press "
    "**Re-track changes**: only the frames the fix changes are tracked again. "
    "Keys: **← →** or **, .** frame · **[ ]** flagged frame · **p / n** + / − click · "
    "**u** or **Ctrl+Z** undo · **Ctrl+Y** redo."
)
HELP_IMPORT = (
    "**Import annotations…** starts from masks you already have: a zip of PNG masks (DAVIS style), "
    "or COCO / YouTube-VIS JSON made for this video. They are reviewed, flagged and exported like "
    "tracked masks."
)


# ---------------------------------------------------------------------- the strip
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _row_top(row: int) -> int:
    """The y of a row's band (its flag markers sit in the MARKER pixels above it)."""
    return PAD + MARKER + row * (MARKER + ROW_HEIGHT + ROW_GAP)


def render_timeline(rows: Sequence[tuple[int, tuple[int, int, int], np.ndarray]], current: int | None = None,
                    width: int = STRIP_WIDTH) -> np.ndarray:  # fmt: skip
    """One band per ``(object_id, colour, codes)`` row (codes from :func:`tracker.flags.timeline`).

    Present frames take the object's colour, absent ones grey; flagged ones are red, edged in
    white and marked by a red triangle above the band (so they show on a red object too);
    ``current`` gets a dark cursor. Returns ``H×width×3`` uint8.
    """
    n = len(rows[0][2]) if rows else 0
    strip = width - LABEL_WIDTH - PAD
    height = _row_top(len(rows)) - MARKER - ROW_GAP + PAD if rows else 2 * PAD
    image = np.full((height, width, 3), 255, np.uint8)
    if n == 0:
        return image
    starts = (np.arange(strip) * n) // strip  # the first frame under each pixel column
    markers: list[tuple[int, int]] = []  # (x, top of the band)
    for row, (_, color, codes) in enumerate(rows):
        codes = np.asarray(codes, np.uint8)
        # several frames per column: the strongest code wins, so one flagged frame still shows
        columns = np.maximum.reduceat(codes, starts) if n >= strip else codes[starts]
        flagged = columns == FLAGGED
        if n * 3 > strip:  # a frame narrower than 3 px: widen its tick
            flagged = flagged | np.r_[False, flagged[:-1]] | np.r_[flagged[1:], False]
        top = _row_top(row)
        band = image[top : top + ROW_HEIGHT, LABEL_WIDTH : LABEL_WIDTH + strip]
        band[:] = ABSENT_COLOR
        band[:, columns >= PRESENT] = color
        edges = (np.r_[flagged[1:], False] | np.r_[False, flagged[:-1]]) & ~flagged
        band[:, edges] = 255
        band[:, flagged] = FLAG_COLOR
        runs = np.flatnonzero(np.diff(np.r_[0, flagged.astype(np.int8), 0]))
        markers += [(LABEL_WIDTH + (a + b - 1) // 2, top) for a, b in zip(runs[::2], runs[1::2], strict=True)]
    if current is not None and 0 <= current < n:
        middle = LABEL_WIDTH + int((current + 0.5) * strip / n)  # the middle of the frame's span
        image[PAD:-PAD, max(middle - 1, LABEL_WIDTH) : middle + 2] = CURSOR_COLOR
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for x, top in markers:
        draw.polygon([(x - 5, top - MARKER), (x + 5, top - MARKER), (x, top - 1)], fill=FLAG_COLOR)
    font = _font(ROW_HEIGHT - 4)
    for row, (object_id, color, _) in enumerate(rows):
        top = _row_top(row)
        draw.rounded_rectangle(
            (4, top + 3, ROW_HEIGHT - 1, top + ROW_HEIGHT - 3), radius=3, fill=tuple(color)
        )
        draw.text(
            (ROW_HEIGHT + 3, top + ROW_HEIGHT / 2), str(object_id), fill=LABEL_COLOR, font=font, anchor="lm"
        )
    return np.asarray(picture)


def timeline_hit(x: float, y: float, num_frames: int, num_rows: int,
                 width: int = STRIP_WIDTH) -> tuple[int, int | None]:  # fmt: skip
    """The frame (and row, when the click is on one) under pixel ``(x, y)`` of the strip."""
    strip = width - LABEL_WIDTH - PAD
    frame_idx = int((float(x) - LABEL_WIDTH) * num_frames // strip)
    frame_idx = min(max(frame_idx, 0), max(num_frames - 1, 0))
    row = int((float(y) - PAD) // (MARKER + ROW_HEIGHT + ROW_GAP))
    return frame_idx, (row if 0 <= row < num_rows else None)


# ---------------------------------------------------------------------- components and wiring
class ReviewTools(NamedTuple):
    flags: gr.Markdown
    previous_flag: gr.Button
    previous_frame: gr.Button
    next_frame: gr.Button
    next_flag: gr.Button
    flag_filter: gr.Dropdown
    mode: gr.Radio
    undo: gr.Button
    redo: gr.Button
    retrack: gr.Button
    refine_previous_frame: gr.Button  # hidden: the keyboard's ← / → in step 3
    refine_next_frame: gr.Button


def build_timeline() -> gr.Image:
    """The strip under the review picture (shown once something is tracked)."""
    return gr.Image(
        label="Timeline",
        elem_id="review-timeline",
        interactive=False,
        show_label=False,
        buttons=[],
        format="png",
        visible=False,
    )


def build_tools() -> ReviewTools:
    """The flag text and the buttons of the loop (below the review slider)."""
    flags = gr.Markdown(elem_id="review-flags", elem_classes=["status", "flag-text"])
    with gr.Row(elem_id="review-nav", equal_height=True):
        previous_flag = gr.Button("« Previous flagged", size="sm", elem_id="prev-flag-btn", min_width=150)
        previous_frame = gr.Button("‹", size="sm", elem_id="review-prev-frame-btn", min_width=44, scale=0)
        next_frame = gr.Button("›", size="sm", elem_id="review-next-frame-btn", min_width=44, scale=0)
        next_flag = gr.Button("Next flagged »", size="sm", elem_id="next-flag-btn", min_width=150)
        flag_filter = gr.Dropdown(
            choices=[("flags of every object", EVERY_OBJECT)],
            value=EVERY_OBJECT,
            label="Flags of",
            elem_id="flag-filter",
            show_label=False,
            container=False,
            min_width=160,
        )
    with gr.Row(elem_id="review-fix", equal_height=True):
        mode = gr.Radio(
            text.MODE_CHOICES, value="positive", show_label=False, elem_id="review-click-mode", scale=3,
            container=False,
        )  # fmt: skip
        undo = gr.Button("↶ Undo", size="sm", elem_id="review-undo-btn", min_width=70, scale=0)
        redo = gr.Button("↷ Redo", size="sm", elem_id="review-redo-btn", min_width=70, scale=0)
        retrack = gr.Button(
            "↻ Re-track changes", variant="primary", size="sm", elem_id="retrack-btn", min_width=170, scale=1
        )
    gr.Markdown(HELP_TOOLS, elem_classes=["step-help"], elem_id="review-keys")
    refine_previous = gr.Button("previous frame", elem_id="refine-prev-frame-btn", visible="hidden")
    refine_next = gr.Button("next frame", elem_id="refine-next-frame-btn", visible="hidden")
    return ReviewTools(
        flags, previous_flag, previous_frame, next_frame, next_flag, flag_filter, mode, undo, redo, retrack,
        refine_previous, refine_next,
    )  # fmt: skip


def build_import() -> gr.UploadButton:
    """The import button of step 6."""
    return gr.UploadButton(
        "Import annotations…", elem_id="import-annotations", file_count="single", file_types=[".zip", ".json"]
    )


def wire(
    review_loop: ReviewLoop,
    tools: ReviewTools,
    timeline_image: gr.Image,
    import_button: gr.UploadButton,
    *,
    session: gr.State,
    review_slider: gr.Slider,
    review_image: gr.Image,
    review_status: gr.Markdown,
    mode: gr.Radio,
    refine_status: gr.Markdown,
    refine_out: list,
    review_out: list,
    download_out: list,
    result_video: gr.Video,
    model: dict[str, Any],
    private: dict[str, Any],
    files: dict[str, Any] | None = None,
) -> None:
    """Connect the loop's components (the page's own events are wired in ``ui.app``); ``files``:
    the concurrency group of the import (file work, kept out of the model slot)."""
    handlers = review_loop.handlers
    frame_out = [review_slider, review_image, review_status, timeline_image, tools.flags]
    flag_inputs = [session, review_slider, tools.flag_filter]

    tools.next_flag.click(review_loop.next_flag, flag_inputs, frame_out, **private)
    tools.previous_flag.click(review_loop.previous_flag, flag_inputs, frame_out, **private)
    tools.next_frame.click(review_loop.next_frame, [session, review_slider], frame_out, **private)
    tools.previous_frame.click(review_loop.previous_frame, [session, review_slider], frame_out, **private)
    timeline_image.select(review_loop.timeline_select, [session], frame_out, **private).success(
        handlers.refine, [session], refine_out, **private
    )

    review_image.select(
        gpu(review_loop.click), [session, review_slider], refine_out, **model, **private
    ).success(review_loop.show, [session, review_slider], frame_out, **private)
    tools.mode.input(review_loop.set_mode, [session, tools.mode], [session, refine_status, mode], **private)
    mode.input(review_loop.mirror_mode, [mode], [tools.mode], **private)
    for button, handler in ((tools.undo, review_loop.undo), (tools.redo, review_loop.redo)):
        button.click(gpu(handler), [session], refine_out, **model, **private).success(
            review_loop.show, [session, review_slider], frame_out, **private
        )
    tools.refine_next_frame.click(review_loop.refine_next_frame, [session], refine_out, **private)
    tools.refine_previous_frame.click(review_loop.refine_previous_frame, [session], refine_out, **private)

    (
        tools.retrack.click(
            gpu(review_loop.retrack, duration=600),
            [session],
            review_out,
            show_progress_on=[review_status],
            **model,
            **private,
        )
        .success(review_loop.prepare_downloads, [session], download_out, **private)
        .then(review_loop.overlay_view, [session], [result_video], **private)
        .then(handlers.refine, [session], refine_out, **private)
    )
    (
        import_button.upload(
            gpu(review_loop.import_annotations),
            [session, import_button],
            refine_out,
            **(files or model),
            **private,
        )
        .success(gpu(review_loop.check), [session], review_out, **model, **private)
        .then(review_loop.prepare_downloads, [session], download_out, **private)
    )


# ---------------------------------------------------------------------- look and keys
CSS = """
#review-timeline { margin: 4px 0 2px; }
#review-timeline img { width: 100%; height: auto; max-height: none; object-fit: fill; cursor: pointer;
                       image-rendering: pixelated; border-radius: 4px; }
#review-timeline .image-container, #review-timeline .image-frame { height: auto !important; }
#review-nav, #review-fix { align-items: center; gap: 8px; }
#review-keys p { font-size: 0.85em; }
.flag-text ul { margin: 2px 0 4px 1.1em; }
.flag-text li { margin: 1px 0; }
"""

# Keyboard shortcuts press the page's own buttons (by elem_id), so a key does exactly what the
# click does. Keys typed into a text box, the number box of a slider or the brush editor are left
# alone; arrows are left to sliders and radio buttons that have the focus.
SHORTCUTS_JS = r"""
(() => {
  if (window.trackerShortcuts) return;
  window.trackerShortcuts = true;
  const TEXT = /^(text|search|email|url|password|number|tel)$/i;
  const typing = (el) => !!el && (el.isContentEditable || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT'
    || (el.tagName === 'INPUT' && TEXT.test(el.type)) || !!el.closest('#brush-editor'));
  const shown = (id) => {
    const el = document.getElementById(id);
    if (!el) return 0;
    const r = el.getBoundingClientRect();
    return Math.max(0, Math.min(r.bottom, window.innerHeight) - Math.max(r.top, 0));
  };
  // the step more of which is on screen gets the keys
  const area = () => (shown('step-review') > shown('step-refine') ? 'review' : 'refine');
  const press = (id) => {
    const el = document.getElementById(id);
    if (!el || el.disabled) return false;
    el.click();
    return true;
  };
  const mode = (value) => {
    const scope = area() === 'review' ? '#review-click-mode' : '#click-mode';
    const input = document.querySelector(`${scope} input[value="${value}"]`)
      || document.querySelector(`#click-mode input[value="${value}"]`);
    if (!input) return false;
    input.click();
    return true;
  };
  const frame = (where, step) => press(`${where}-${step}-frame-btn`);
  const undo = (where) => press(where === 'review' ? 'review-undo-btn' : 'undo-btn');
  const redo = (where) => press(where === 'review' ? 'review-redo-btn' : 'redo-btn');
  document.addEventListener('keydown', (event) => {
    if (event.defaultPrevented || event.isComposing || event.altKey || typing(event.target)) return;
    const where = area();
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const ctrl = event.ctrlKey || event.metaKey;
    let done = false;
    if (ctrl) {
      if (key === 'z') done = event.shiftKey ? redo(where) : undo(where);
      else if (key === 'y') done = redo(where);
    } else if (key === 'ArrowRight' || key === 'ArrowLeft') {
      if (event.target && event.target.tagName === 'INPUT') return;  // a focused slider or radio moves itself
      done = frame(where, key === 'ArrowRight' ? 'next' : 'prev');
    } else if (key === '.' || key === ',') {
      done = frame(where, key === '.' ? 'next' : 'prev');
    } else if (key === ']' || key === '[') {
      done = press(key === ']' ? 'next-flag-btn' : 'prev-flag-btn');
    } else if (key === 'p' || key === 'n') {
      done = mode(key === 'p' ? 'positive' : 'negative');
    } else if (key === 'u') {
      done = undo(where);
    }
    if (done) event.preventDefault();
  });
})();
"""
SHORTCUTS_HEAD = f"<script>{SHORTCUTS_JS}</script>"


__all__ = [
    "CSS",
    "EVERY_OBJECT",
    "HELP_IMPORT",
    "HELP_TOOLS",
    "SHORTCUTS_HEAD",
    "ReviewTools",
    "build_import",
    "build_timeline",
    "build_tools",
    "render_timeline",
    "timeline_hit",
    "wire",
]
