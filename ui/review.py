"""The annotator's loop in step 5: see where tracks are doubtful, jump there, fix, re-track only that.

* A **timeline** per object (present / absent / flagged along the video, the codes of
  :func:`tracker.flags.timeline`) drawn as a small strip; a click on it jumps to that frame and
  makes that row's object the one clicks go to.
* **Next / Previous flagged** move the review to the next doubtful frame (of every object, or of
  one) and say why, in the words of each :class:`tracker.flags.Flag`.
* A click on the review picture fixes that frame (the click modes of step 3; box and brush through
  **Fix this frame**); **Undo** / **Redo** as in step 3.
* **Re-track changes** runs :meth:`tracker.workspace.Workspace.retrack` from the corrected frame:
  only the span where the new masks differ from the old is tracked again.
* Flags are computed after every run (track, stop, re-track, import, open project) and go into
  the downloads (step 6, prepared here) as ``flags.json`` / ``flags.csv``, inside the zip too.
* Existing annotations (a zip of DAVIS PNGs, COCO or YouTube-VIS JSON) can be imported.
* Keyboard shortcuts (:data:`SHORTCUTS_HEAD`) press the same buttons.

:class:`ReviewLoop` works on the page's :class:`ui.handlers.Handlers` (the same sessions, the same
views); :func:`build_timeline`, :func:`build_tools`, :func:`build_import` make the components and
:func:`wire` connects them. Drawing the strip is presentation and stays here; everything it shows
comes from :mod:`tracker.flags`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from gradio.data_classes import FileData
from PIL import Image, ImageDraw, ImageFont

from tracker.errors import InputError
from tracker.flags import (
    AREA_JUMP,
    CLIP_DROP,
    FLAGGED,
    LOW_SCORE,
    OVERLAP,
    PRESENT,
    REAPPEARED,
    TOO_FAST,
    VANISHED,
    Flag,
    flags_at,
    next_flagged,
    previous_flagged,
    timeline,
)

from . import text
from .gpu import gpu
from .guard import guarded
from .handlers import LIVE_FRAME_EVERY, Handlers, RefineView, _enlarge, display_scale
from .state import UISession

logger = logging.getLogger(__name__)

# Re-tracking stops, in each direction, once the new masks match the old ones this well (mask
# IoU) for this many frames in a row (Workspace.retrack's own defaults).
AGREE_IOU = 0.9
AGREE_FRAMES = 8
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

REASON_WORDS = {
    VANISHED: "lost",
    REAPPEARED: "back",
    AREA_JUMP: "size jump",
    TOO_FAST: "jump",
    LOW_SCORE: "unsure",
    CLIP_DROP: "looks different",
    OVERLAP: "overlap",
}

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
NOTHING_FLAGGED = "Nothing flagged: no losses, jumps, size changes or overlaps were found."
# Exports listed for download, in this order (Workspace.export's names); anything else goes after them.
DOWNLOAD_ORDER = ("zip", "overlay", "coco", "ytvis", "mot", "trajectories", "candidates_csv",
                  "candidates_json", "flags_csv", "flags_json", "manifest")  # fmt: skip


@dataclass
class ReviewState:
    """Flags of the last run, for the workspace they were computed on."""

    workspace: Any
    flags: list[Flag]


class LoopView(NamedTuple):
    """Step 5 after a run: the review frame plus the timeline, the flag text and the object filter."""

    slider: Any
    frame: Any
    status: str
    timeline: Any
    flags: str
    flag_filter: Any


class FrameView(NamedTuple):
    """Step 5 moved to another frame."""

    slider: Any
    frame: Any
    status: Any
    timeline: Any
    flags: Any


class DownloadView(NamedTuple):
    """Step 6: the files, the zip and project buttons, and what is ready."""

    files: list[str] | None
    zip_button: Any
    project_button: Any
    status: str


def _skip_frame_view() -> FrameView:
    return FrameView(gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip())


class ReviewLoop:
    """The review loop's handlers, on top of the page's :class:`Handlers`.

    ``agree_iou`` / ``agree_frames`` are :meth:`Workspace.retrack`'s stop rule and ``with_clip``
    whether flags use CLIP; tests change them on the instance.
    """

    agree_iou: float = AGREE_IOU
    agree_frames: int = AGREE_FRAMES
    with_clip: bool = True

    def __init__(self, handlers: Handlers) -> None:
        self.h = handlers
        self.services = handlers.services

    # ------------------------------------------------------------------ state
    def _session(self, session: UISession | None, request: gr.Request | None) -> UISession:
        return self.h.session(session, request)

    @staticmethod
    def _state(session: UISession) -> ReviewState | None:
        state = getattr(session, "review", None)
        if state is None or session.workspace is None or state.workspace is not session.workspace:
            return None
        return state

    def _flags(self, session: UISession, object_id: int | None = None) -> list[Flag]:
        """The last run's flags of objects that still exist (of ``object_id`` only, when given)."""
        state = self._state(session)
        if state is None:
            return []
        objects = session.workspace.objects
        return [
            f for f in state.flags if f.object_id in objects and (not object_id or f.object_id == object_id)
        ]

    def _compute_flags(self, session: UISession) -> list[Flag]:
        ws = session.workspace
        if ws is None or len(ws.store) == 0:
            session.review = None
            return []
        started = time.perf_counter()
        flags = list(ws.flags(with_clip=self.with_clip))
        session.review = ReviewState(ws, flags)
        logger.info("%d flag(s) in %.1f s", len(flags), time.perf_counter() - started)
        return flags

    @staticmethod
    def _tracked(session: UISession):
        ws = session.workspace
        return ws if ws is not None and len(ws.store) else None

    @staticmethod
    def _clamp(ws, frame_idx: float | None) -> int:
        return min(max(int(round(frame_idx or 0)), 0), ws.info.num_frames - 1)

    # ------------------------------------------------------------------ views
    def loop_view(self, session: UISession) -> LoopView:
        """Step 5 as a whole: the slider, the frame, the status, the strip, the flags, the filter."""
        ws = self._tracked(session)
        if ws is None:
            return LoopView(
                gr.update(minimum=0, maximum=1, value=0, interactive=False, label="Frame"),
                None,
                text.NOTHING_TRACKED,
                gr.update(value=None, visible=False),
                "",
                gr.update(choices=self._filter_choices(None)),
            )
        last = max(ws.info.num_frames - 1, 0)
        frame_idx = self._clamp(ws, session.frame_idx)
        image, status = self._picture(ws, frame_idx)
        return LoopView(
            gr.update(minimum=0, maximum=max(last, 1), value=frame_idx, interactive=last > 0, label="Frame"),
            image,
            status,
            self._timeline(session, frame_idx),
            self._flag_text(session, frame_idx),
            gr.update(choices=self._filter_choices(ws)),
        )

    def frame_view(self, session: UISession, frame_idx: float | None) -> FrameView:
        ws = self.h.workspace(session)
        frame_idx = self._clamp(ws, frame_idx)
        image, status = self._picture(ws, frame_idx)
        return FrameView(
            gr.update(value=frame_idx),
            image,
            status,
            self._timeline(session, frame_idx),
            self._flag_text(session, frame_idx),
        )

    @staticmethod
    def _picture(ws, frame_idx: int) -> tuple[np.ndarray, str]:
        """The review picture of ``frame_idx`` (shown enlarged for small videos) and its status line."""
        return _enlarge(ws.preview(frame_idx), display_scale(ws.info.width)), review_status(ws, frame_idx)

    @staticmethod
    def _filter_choices(ws) -> list[tuple[str, int]]:
        choices = [("flags of every object", EVERY_OBJECT)]
        if ws is not None:
            choices += [(f"flags of {o.object_id} · {o.name}", o.object_id) for o in ws.objects.values()]
        return choices

    def _timeline(self, session: UISession, frame_idx: int) -> Any:
        ws = self._tracked(session)
        if ws is None or not ws.objects:
            return gr.update(value=None, visible=False)
        flags = self._flags(session)
        n = ws.info.num_frames
        rows = [
            (o.object_id, o.color, timeline(ws.store, flags, n, o.object_id)) for o in ws.objects.values()
        ]
        return gr.update(value=render_timeline(rows, frame_idx), visible=True)

    def _flag_text(self, session: UISession, frame_idx: int) -> str:
        ws = self._tracked(session)
        if ws is None:
            return ""
        flags = self._flags(session)
        target = self._click_target(session)
        if not flags:
            return f"{NOTHING_FLAGGED}\n\n{target}" if self._state(session) is not None else target
        frames = sorted({f.frame for f in flags})
        here = flags_at(flags, frame_idx)
        lines = []
        if here:
            lines.append(
                f"**⚑ Frame {frame_idx} is flagged** (flagged frame {frames.index(frame_idx) + 1} of {len(frames)}):"
            )
            for flag in here:
                obj = ws.objects.get(flag.object_id)
                who = f"{flag.object_id} · {escape(obj.name)}" if obj is not None else str(flag.object_id)
                word = REASON_WORDS.get(flag.reason, flag.reason)
                lines.append(f"- **{word}** ({who}): {escape(flag.message)}")
        else:
            later = next_flagged(flags, frame_idx)
            hint = f" the next is frame {later}" if later is not None else " none after this frame"
            lines.append(f"No flag on frame {frame_idx}. {len(frames)} flagged frame(s) in all;{hint}.")
        lines.append(f"\n{target}")
        return "\n".join(lines)

    @staticmethod
    def _click_target(session: UISession) -> str:
        ws = session.workspace
        object_id = session.object_id if ws is not None and session.object_id in ws.objects else None
        if object_id is None:
            return "<small>Clicks on the picture go to a new object.</small>"
        return f"<small>Clicks on the picture go to **{object_id} · {escape(ws.objects[object_id].name)}**.</small>"

    # ------------------------------------------------------------------ after a run
    @guarded
    def review_view(self, session: UISession | None, request: gr.Request = None) -> LoopView:
        """Step 5 as it is (after a new video: empty)."""
        return self.loop_view(self._session(session, request))

    @guarded
    def check(self, session: UISession | None, request: gr.Request = None) -> LoopView:
        """After a run: flag the doubtful frames, then show step 5 with the timeline."""
        session = self._session(session, request)
        self._compute_flags(session)
        return self.loop_view(session)

    # ------------------------------------------------------------------ downloads (step 6)
    @guarded
    def prepare_downloads(self, session: UISession | None, request: gr.Request = None) -> DownloadView:
        """Every export of the work so far (the flags under review included, in the files and the
        zip) and the project file beside them."""
        session = self._session(session, request)
        ws = self._tracked(session)
        if ws is None:
            return self.reset_downloads()
        if self._state(session) is None:
            self._compute_flags(session)
        flags = self._flags(session)
        out = session.new_run_dir("export")
        written = ws.export(out, flags=flags)
        project = ws.save_project(out / "project.json")
        files = [str(p) for p in _ordered_files(written)] + [str(project)]
        if "overlay" in written:
            session.last_overlay = Path(written["overlay"])
        count = len({f.frame for f in flags})
        status = (
            f"{len(files)} files ready; {count} flagged frame{'s' if count != 1 else ''} listed in flags.csv. "
            "PNG masks are inside the zip."
        )
        return DownloadView(
            files,
            gr.update(value=str(written["zip"]) if "zip" in written else None, interactive="zip" in written),
            gr.update(value=str(project), interactive=True),
            status,
        )

    @staticmethod
    def reset_downloads() -> DownloadView:
        """Step 6 with nothing to download (a new video, or nothing tracked yet)."""
        return DownloadView(
            None,
            gr.update(value=None, interactive=False),
            gr.update(value=None, interactive=False),
            text.NOTHING_TRACKED,
        )

    @guarded
    def overlay_view(self, session: UISession | None, request: gr.Request = None):
        """The overlay video again, after a re-track (the export rendered it anew)."""
        session = self._session(session, request)
        path = session.last_overlay
        if path is None or not Path(path).is_file():
            return gr.skip()
        return FileData(path=str(path)) if self.services.streaming else str(path)

    # ------------------------------------------------------------------ moving around
    @guarded
    def review_frame(self, session: UISession | None, frame_idx: float, request: gr.Request = None):
        """The slider moved: the frame, the status, the timeline cursor and the flags there."""
        return self.frame_view(self._session(session, request), frame_idx)[1:]

    @guarded
    def fix_frame(
        self, session: UISession | None, frame_idx: float, request: gr.Request = None
    ) -> RefineView:
        """**Fix this frame**: step 3 on the review's frame (for a box or the brush)."""
        session = self._session(session, request)
        self.h.workspace(session)
        session.frame_idx = int(round(frame_idx or 0))
        session.box_start = None
        return self.h.refine_view(
            session,
            "Fix the mask here, then press **Re-track changes** in step 5 (or **Track** for a full run).",
        )

    @guarded
    def show(self, session: UISession | None, frame_idx: float, request: gr.Request = None) -> FrameView:
        return self.frame_view(self._session(session, request), frame_idx)

    def _step(self, session, frame_idx, delta: int, request) -> FrameView:
        session = self._session(session, request)
        ws = self._tracked(session)
        if ws is None:
            return _skip_frame_view()
        return self.frame_view(session, self._clamp(ws, frame_idx) + delta)

    @guarded
    def next_frame(
        self, session: UISession | None, frame_idx: float, request: gr.Request = None
    ) -> FrameView:
        return self._step(session, frame_idx, 1, request)

    @guarded
    def previous_frame(
        self, session: UISession | None, frame_idx: float, request: gr.Request = None
    ) -> FrameView:
        return self._step(session, frame_idx, -1, request)

    def _jump(self, session, frame_idx, only, find: Callable, where: str, request) -> FrameView:
        session = self._session(session, request)
        ws = self.h.workspace(session)
        if not len(ws.store):
            raise InputError(text.NOTHING_TRACKED)
        object_id = int(only) if only and int(only) in ws.objects else None
        flags = self._flags(session, object_id)
        current = self._clamp(ws, frame_idx)
        target = find(flags, current)
        if target is None:
            of = f" for {ws.objects[object_id].name}" if object_id else ""
            gr.Info(f"No flagged frame {where} frame {current}{of}." if flags else f"Nothing is flagged{of}.")
            return _skip_frame_view()
        return self.frame_view(session, target)

    @guarded
    def next_flag(
        self, session: UISession | None, frame_idx: float, only: int | None, request: gr.Request = None
    ) -> FrameView:
        return self._jump(session, frame_idx, only, next_flagged, "after", request)

    @guarded
    def previous_flag(
        self, session: UISession | None, frame_idx: float, only: int | None, request: gr.Request = None
    ) -> FrameView:
        return self._jump(session, frame_idx, only, previous_flagged, "before", request)

    @guarded
    def timeline_select(
        self, session: UISession | None, evt: gr.SelectData, request: gr.Request = None
    ) -> FrameView:
        """A click on the strip: that frame, and that row's object takes the next clicks."""
        session = self._session(session, request)
        ws = self.h.workspace(session)
        frame_idx, row = timeline_hit(evt.index[0], evt.index[1], ws.info.num_frames, len(ws.objects))
        if row is not None:
            session.object_id = list(ws.objects)[row]
            session.box_start = None
        return self.frame_view(session, frame_idx)

    # ------------------------------------------------------------------ fixing
    @guarded
    def click(
        self, session: UISession | None, frame_idx: float, evt: gr.SelectData, request: gr.Request = None
    ) -> RefineView:
        """A click on the review picture: the same as a click in step 3, on this frame."""
        session = self._session(session, request)
        ws = self.h.workspace(session)
        frame_idx = self._clamp(ws, frame_idx)
        if session.frame_idx != frame_idx:
            session.box_start = None
        session.frame_idx = frame_idx
        return self.h.click(session, evt, request)

    @guarded
    def set_mode(self, session: UISession | None, mode: str, request: gr.Request = None):
        """The click mode chosen in step 5; step 3's radio follows."""
        session, status = self.h.set_mode(session, mode, request)
        return session, status, gr.update(value=session.mode)

    @staticmethod
    def mirror_mode(mode: str):
        return gr.update(value=mode)

    @guarded
    def undo(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        return self.h.undo(session, request)

    @guarded
    def redo(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        return self.h.redo(session, request)

    @guarded
    def refine_next_frame(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self._session(session, request)
        return self.h.goto_frame(session, session.frame_idx + 1, request)

    @guarded
    def refine_previous_frame(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self._session(session, request)
        return self.h.goto_frame(session, max(session.frame_idx - 1, 0), request)

    @guarded
    def retrack(
        self,
        session: UISession | None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's documented idiom)
    ):
        """Re-track from the last corrected frame, only as far as the correction changes the masks."""
        session = self._session(session, request)
        ws = self.h.workspace(session)
        if session.tracking:
            raise InputError("Tracking is already running; wait for it to finish or press Stop.")
        if not len(ws.store):
            raise InputError(
                "Nothing has been tracked yet: press **Track** first; re-tracking is for fixes after that."
            )
        frame_idx = self._clamp(ws, session.frame_idx)
        total = ws.info.num_frames
        scale = display_scale(ws.info.width)
        session.cancel.clear()
        session.tracking = True
        session.track_started = time.time()
        last_live = 0.0
        try:
            progress(0.0, desc=f"Re-tracking from frame {frame_idx}…")
            run = ws.retrack(
                frame_idx, agree_iou=self.agree_iou, agree_frames=self.agree_frames, cancel=session.cancel
            )
            for event in run:
                shown = event.result.frame_idx
                progress(
                    min(event.done / max(event.total, 1), 1.0),
                    desc=f"Re-tracking {event.direction}: frame {shown} · {event.done} frames so far",
                )
                now = time.monotonic()
                if now - last_live >= LIVE_FRAME_EVERY:
                    last_live = now
                    yield LoopView(
                        gr.update(value=shown),
                        _enlarge(event.overlay, scale),
                        "",
                        gr.skip(),
                        gr.skip(),
                        gr.skip(),
                    )
            stopped = session.cancel.is_set()
        finally:
            session.tracking = False
        frames = sorted(set(ws.last_retrack_frames))
        progress(1.0, desc="Checking the tracks…")
        self._compute_flags(session)
        session.frame_idx = frame_idx
        view = self.loop_view(session)
        span = f" (frames {frames[0]}–{frames[-1]})" if frames else ""
        done = f"Re-tracked **{len(frames)} of {total} frames**{span} around frame {frame_idx}; the other {total - len(frames)} were kept."
        if stopped:
            done = "Stopped. " + done
        yield view._replace(status=f"{done}  \n{view.status}")

    @guarded
    def import_annotations(
        self, session: UISession | None, upload: Any, request: gr.Request = None
    ) -> RefineView:
        """Masks from a file become objects with results (reviewed, flagged and exported as they are)."""
        session = self._session(session, request)
        if not upload:
            return self.h.refine_view(session)
        if session.workspace is None:
            raise InputError(
                "Upload the video these annotations were made for first (step 1), then import them."
            )
        if session.tracking:
            raise InputError("Tracking is running; import the annotations when it is done.")
        ws = session.workspace
        created = ws.import_annotations(private_annotations(Path(str(upload)), session.new_run_dir("import")))
        first = created[0].object_id
        session.object_id = first
        session.box_start = None
        prompted = [p.frame_idx for p in ws.prompts() if p.object_id == first]
        session.frame_idx = min(prompted) if prompted else session.frame_idx
        names = ", ".join(o.name for o in created)
        gr.Info(
            f"Imported {len(created)} object{'s' if len(created) != 1 else ''}: {names}. Review them in step 5.",
            duration=6,
        )
        return self.h.refine_view(session, f"Imported **{escape(names)}**: review them in step 5.")


# ---------------------------------------------------------------------- small translations
def review_status(ws, frame_idx: int) -> str:
    """The line under the review picture: the frame, its time, what is tracked and what is visible."""
    result = ws.result_at(frame_idx)
    tracked = len(ws.store)
    head = f"Frame {frame_idx} · {text.format_time(ws.info.time_of(frame_idx))} · {tracked} of {ws.info.num_frames} frames tracked."
    if result is None or not result.object_ids:
        return head + " No mask on this frame."
    visible = [
        ws.objects[oid].name
        for oid, mask in zip(result.object_ids, result.masks, strict=True)
        if oid in ws.objects and mask.any()
    ]
    lost = [o.name for o in ws.objects.values() if o.name not in visible]
    line = head + (f" Visible: {escape(', '.join(visible))}." if visible else " No object visible.")
    if lost:
        line += f" Not found: {escape(', '.join(lost))}."
    return line


def _ordered_files(written: dict[str, Path]) -> list[Path]:
    """The files of an export in :data:`DOWNLOAD_ORDER` (folders go in the zip only)."""
    files = [Path(written[name]) for name in DOWNLOAD_ORDER if name in written]
    files += [Path(p) for name, p in written.items() if name not in DOWNLOAD_ORDER]
    return [p for p in dict.fromkeys(files) if p.is_file()]


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


def private_annotations(upload: Path, folder: Path) -> Path:
    """The upload as ``folder/annotations.json`` or ``folder/annotations.zip``.

    Only whether it is JSON survives from the upload's name (the readers go by it).
    """
    if not upload.is_file():
        raise InputError("The uploaded file is gone from the server (uploads expire); upload it again.")
    target = Path(folder) / ("annotations.json" if upload.suffix.lower() == ".json" else "annotations.zip")
    shutil.copyfile(upload, target)
    return target


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
    rv: ReviewLoop,
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
    """Connect the loop's components (the page's own events are wired in ``ui.app``).

    ``files`` is the concurrency group of file work (the import), kept out of the model slot.
    """
    h = rv.h
    frame_out = [review_slider, review_image, review_status, timeline_image, tools.flags]
    flag_inputs = [session, review_slider, tools.flag_filter]

    tools.next_flag.click(rv.next_flag, flag_inputs, frame_out, **private)
    tools.previous_flag.click(rv.previous_flag, flag_inputs, frame_out, **private)
    tools.next_frame.click(rv.next_frame, [session, review_slider], frame_out, **private)
    tools.previous_frame.click(rv.previous_frame, [session, review_slider], frame_out, **private)
    timeline_image.select(rv.timeline_select, [session], frame_out, **private).success(
        h.refine, [session], refine_out, **private
    )

    review_image.select(gpu(rv.click), [session, review_slider], refine_out, **model, **private).success(
        rv.show, [session, review_slider], frame_out, **private
    )
    tools.mode.input(rv.set_mode, [session, tools.mode], [session, refine_status, mode], **private)
    mode.input(rv.mirror_mode, [mode], [tools.mode], **private)
    for button, handler in ((tools.undo, rv.undo), (tools.redo, rv.redo)):
        button.click(gpu(handler), [session], refine_out, **model, **private).success(
            rv.show, [session, review_slider], frame_out, **private
        )
    tools.refine_next_frame.click(rv.refine_next_frame, [session], refine_out, **private)
    tools.refine_previous_frame.click(rv.refine_previous_frame, [session], refine_out, **private)

    (
        tools.retrack.click(
            gpu(rv.retrack, duration=600),
            [session],
            review_out,
            show_progress_on=[review_status],
            **model,
            **private,
        )
        .success(rv.prepare_downloads, [session], download_out, **private)
        .then(rv.overlay_view, [session], [result_video], **private)
        .then(h.refine, [session], refine_out, **private)
    )
    (
        import_button.upload(
            gpu(rv.import_annotations), [session, import_button], refine_out, **(files or model), **private
        )
        .success(gpu(rv.check), [session], review_out, **model, **private)
        .then(rv.prepare_downloads, [session], download_out, **private)
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
    "SHORTCUTS_HEAD",
    "DownloadView",
    "FrameView",
    "LoopView",
    "ReviewLoop",
    "ReviewTools",
    "build_import",
    "build_timeline",
    "build_tools",
    "render_timeline",
    "timeline_hit",
    "wire",
]
