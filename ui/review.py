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

:class:`ReviewLoop` (the handlers, here) works on the page's :class:`ui.handlers.Handlers` (the
same sessions, the same views). What the step looks like lives in :mod:`ui.review_layout`: the
strip's drawing (:func:`render_timeline`, :func:`timeline_hit`), the components
(:func:`build_timeline`, :func:`build_tools`, :func:`build_import`), :func:`wire`, the CSS and the
keys; they are re-exported here, so ``ui.review.<name>`` keeps working. Everything the strip shows
comes from :mod:`tracker.flags`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from gradio.data_classes import FileData

from tracker.errors import InputError
from tracker.flags import (
    AREA_JUMP,
    CLIP_DROP,
    DISCOVERED,
    LOW_SCORE,
    OVERLAP,
    REACQUIRED,
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
from .guard import guarded
from .handlers import LIVE_FRAME_EVERY, Handlers, RefineView, _enlarge, display_scale
from .protocols import WorkspaceLike
from .review_layout import (  # re-exported: ui.review.<name> is where callers and tests look
    ABSENT_COLOR,
    CSS,
    CURSOR_COLOR,
    EVERY_OBJECT,
    FLAG_COLOR,
    HELP_IMPORT,
    HELP_TOOLS,
    LABEL_COLOR,
    LABEL_WIDTH,
    MARKER,
    PAD,
    ROW_GAP,
    ROW_HEIGHT,
    SHORTCUTS_HEAD,
    SHORTCUTS_JS,
    STRIP_WIDTH,
    ReviewTools,
    build_import,
    build_timeline,
    build_tools,
    render_timeline,
    timeline_hit,
    wire,
)
from .review_layout import _row_top as _row_top  # the tests measure the strip with it
from .state import UISession

logger = logging.getLogger(__name__)

# Re-tracking stops, in each direction, once the new masks match the old ones this well (mask
# IoU) for this many frames in a row (Workspace.retrack's own defaults).
AGREE_IOU = 0.9
AGREE_FRAMES = 8

REASON_WORDS = {
    VANISHED: "lost",
    REAPPEARED: "back",
    AREA_JUMP: "size jump",
    TOO_FAST: "jump",
    LOW_SCORE: "unsure",
    CLIP_DROP: "looks different",
    OVERLAP: "overlap",
    DISCOVERED: "new object",
    REACQUIRED: "found again",
}

NOTHING_FLAGGED = "Nothing flagged: no losses, jumps, size changes or overlaps were found."
# Exports listed for download, in this order (Workspace.export's names); anything else goes after them.
DOWNLOAD_ORDER = ("zip", "overlay", "coco", "ytvis", "mot", "trajectories", "candidates_csv",
                  "candidates_json", "flags_csv", "flags_json", "manifest")  # fmt: skip


@dataclass
class ReviewState:
    """Flags of the last run, for the workspace they were computed on."""

    workspace: WorkspaceLike
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
        self.handlers = handlers
        self.services = handlers.services

    # ------------------------------------------------------------------ state
    def _session(self, session: UISession | None, request: gr.Request | None) -> UISession:
        return self.handlers.session(session, request)

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
    def _tracked(session: UISession) -> WorkspaceLike | None:
        ws = session.workspace
        return ws if ws is not None and len(ws.store) else None

    @staticmethod
    def _clamp(ws: WorkspaceLike, frame_idx: float | None) -> int:
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
        ws = self.handlers.workspace(session)
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
    def _picture(ws: WorkspaceLike, frame_idx: int) -> tuple[np.ndarray, str]:
        """The review picture of ``frame_idx`` (shown enlarged for small videos) and its status line."""
        return _enlarge(ws.preview(frame_idx), display_scale(ws.info.width)), review_status(ws, frame_idx)

    @staticmethod
    def _filter_choices(ws: WorkspaceLike | None) -> list[tuple[str, int]]:
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
        self.handlers.workspace(session)
        session.frame_idx = int(round(frame_idx or 0))
        session.box_start = None
        return self.handlers.refine_view(
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
        ws = self.handlers.workspace(session)
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
        ws = self.handlers.workspace(session)
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
        ws = self.handlers.workspace(session)
        frame_idx = self._clamp(ws, frame_idx)
        if session.frame_idx != frame_idx:
            session.box_start = None
        session.frame_idx = frame_idx
        return self.handlers.click(session, evt, request)

    @guarded
    def set_mode(self, session: UISession | None, mode: str, request: gr.Request = None):
        """The click mode chosen in step 5; step 3's radio follows."""
        session, status = self.handlers.set_mode(session, mode, request)
        return session, status, gr.update(value=session.mode)

    @staticmethod
    def mirror_mode(mode: str):
        return gr.update(value=mode)

    @guarded
    def undo(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        return self.handlers.undo(session, request)

    @guarded
    def redo(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        return self.handlers.redo(session, request)

    @guarded
    def refine_next_frame(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self._session(session, request)
        return self.handlers.goto_frame(session, session.frame_idx + 1, request)

    @guarded
    def refine_previous_frame(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self._session(session, request)
        return self.handlers.goto_frame(session, max(session.frame_idx - 1, 0), request)

    @guarded
    def retrack(
        self,
        session: UISession | None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's documented idiom)
    ):
        """Re-track from the last corrected frame, only as far as the correction changes the masks."""
        session = self._session(session, request)
        ws = self.handlers.workspace(session)
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
            return self.handlers.refine_view(session)
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
        return self.handlers.refine_view(session, f"Imported **{escape(names)}**: review them in step 5.")


# ---------------------------------------------------------------------- small translations
def review_status(ws: WorkspaceLike, frame_idx: int) -> str:
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


def private_annotations(upload: Path, folder: Path) -> Path:
    """The upload as ``folder/annotations.json`` or ``folder/annotations.zip``.

    Only whether it is JSON survives from the upload's name (the readers go by it).
    """
    if not upload.is_file():
        raise InputError("The uploaded file is gone from the server (uploads expire); upload it again.")
    target = Path(folder) / ("annotations.json" if upload.suffix.lower() == ".json" else "annotations.zip")
    shutil.copyfile(upload, target)
    return target


__all__ = [
    "ABSENT_COLOR",
    "CSS",
    "CURSOR_COLOR",
    "EVERY_OBJECT",
    "FLAG_COLOR",
    "HELP_IMPORT",
    "HELP_TOOLS",
    "LABEL_COLOR",
    "LABEL_WIDTH",
    "MARKER",
    "PAD",
    "ROW_GAP",
    "ROW_HEIGHT",
    "SHORTCUTS_HEAD",
    "SHORTCUTS_JS",
    "STRIP_WIDTH",
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
