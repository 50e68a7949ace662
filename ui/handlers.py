"""Event handlers: Gradio values in → :class:`tracker.workspace.Workspace` calls → Gradio values out.

Each handler returns one of a few small named views (``RefineView``, ``FindView``, …), each
derived from the session's state, so every event that changes the refine area returns the same
seven values in the same order. Handlers only resize pictures for display (thumbnails, small
videos shown enlarged); masks are drawn, frames decoded and videos encoded by the workspace and
:class:`ui.services.Services`.

Long work (finding candidates, tracking) is a generator, so results stream to the browser and
the Stop button's cancel flag is seen between frames.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import time
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from gradio.data_classes import FileData
from PIL import Image

from tracker.candidates import prompt_notes
from tracker.errors import InputError, VideoError
from tracker.masks import resize_mask
from tracker.types import FramePrompt

from . import text
from .guard import guarded
from .protocols import WorkspaceLike
from .services import Services
from .state import SessionStore, UISession
from .streaming import SegmentStream

logger = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 360
DISPLAY_MIN_WIDTH = 640  # smaller videos are shown enlarged (whole pixels) so they are easy to click
MAX_CANDIDATES_SHOWN = 12
LIVE_FRAME_EVERY = 0.4  # seconds between live-frame updates while tracking


class RefineView(NamedTuple):
    """Step 3: the frame with masks, the frame slider, the object list and what a click will do."""

    session: UISession
    frame: np.ndarray | None
    slider: Any
    objects: Any
    legend: str
    name: str
    status: str


class FindView(NamedTuple):
    session: UISession
    gallery: list[tuple[np.ndarray, str]]
    status: str


class TrackView(NamedTuple):
    session: UISession
    video: Any
    live: Any
    status: str


def _request_hash(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def _discovery_options(discover: bool, every: float | None) -> dict[str, Any]:
    """``Workspace.track``'s discovery argument for the switch and the interval (nothing when off)."""
    if not discover:
        return {}
    from tracker.discovery import DEFAULT_EVERY, DiscoveryConfig

    return {"discover": DiscoveryConfig(every=max(1, int(every or DEFAULT_EVERY)))}


def _selected_candidate(session: UISession, ws: Any, missing: str) -> int:
    """The index of the last clicked candidate, still in ``ws.candidates``; else ``missing``."""
    index = session.selected_candidate
    if index is None or not 0 <= index < len(ws.candidates):
        raise InputError(missing)
    return index


def _found_line(ws: Any, record: Any) -> str:
    """``#3 (dog 3) found at 0:07, score 27.4``: the record with its object's name."""
    obj = ws.objects.get(record.object_id)
    return record.describe(ws.info.fps, obj.name if obj is not None else None)


def _found_sentence(ws: Any) -> str:
    """`` Found while tracking: #3 (dog 3) found at 0:07, score 27.4; ….`` and where to check them
    (empty when nothing was found)."""
    records = [r for r in ws.found_records() if r.kind != "accepted"]
    if not records:
        return ""
    found = "; ".join(escape(_found_line(ws, r)) for r in records)
    return f" Found while tracking: {found}. {text.FOUND_FLAGGED}"


class Handlers:
    """Every handler of the page; one instance serves every tab (state lives in ``UISession``)."""

    def __init__(self, services: Services, store: SessionStore) -> None:
        self.services = services
        self.store = store

    # ------------------------------------------------------------------ helpers
    def session(self, session: UISession | None, request: gr.Request | None = None) -> UISession:
        return self.store.get(session, _request_hash(request))

    @staticmethod
    def workspace(session: UISession) -> WorkspaceLike:
        if session.workspace is None:
            raise InputError(text.NO_VIDEO)
        return session.workspace

    def _current_object(self, session: UISession, create: bool = False) -> int | None:
        ws = self.workspace(session)
        if session.object_id in ws.objects:
            return session.object_id
        if ws.objects:
            session.object_id = next(reversed(ws.objects))
            return session.object_id
        if not create:
            return None
        session.object_id = ws.add_object(ws.prompt_text or None).object_id
        return session.object_id

    def _estimate(self, session: UISession, preset: str | None) -> str:
        ws = session.workspace
        if ws is None:
            return ""
        info = ws.info
        size = f"{info.source_width}×{info.source_height}"
        if (info.width, info.height) != (info.source_width, info.source_height):
            size += f", works at {info.width}×{info.height}"
        line = f"**{info.duration:.1f} s**, {info.num_frames} frames at {info.fps:.3g} fps ({size})."
        name = preset or self.services.default_preset
        seconds = self.services.estimate_seconds(name, info.num_frames)
        choice = next((p for p in self.services.presets if p.name == name), None)
        if seconds is not None:
            line += (
                f"  \nTracking one object: about **{text.format_seconds(seconds)}** on this machine "
                f"({self.services.device_label})"
            )
            if choice is not None:
                line += f" with *{choice.label}*" + (f" ({choice.description})" if choice.description else "")
            line += "."
        return line

    # ------------------------------------------------------------------ step 1: input
    @guarded
    def on_video(
        self, session: UISession | None, video: str | None, preset: str | None, request: gr.Request = None
    ):
        """A video was uploaded, picked from the examples or cleared: open it (probe only).

        A file that cannot be opened leaves the current video and its work as they were.
        """
        session = self.session(session, request)
        if not video:
            self._check_idle(session, "clear the video")
            session.reset_video()
            return session, ""
        self._open(session, Path(video), preset)
        return session, self._estimate(session, preset)

    @guarded
    def on_preset(self, session: UISession | None, preset: str | None, request: gr.Request = None):
        session = self.session(session, request)
        ws = session.workspace
        if ws is not None and ws.settings.preset != self.services.settings_for(preset).preset:
            if ws.objects or ws.candidates:
                gr.Info("The new preset applies when you press Find again (that starts this video over).")
            else:
                self._open(session, session.video_path, preset, source=session.source)
        return session, self._estimate(session, preset)

    def _open(self, session: UISession, video: Path, preset: str | None, source: str | None = None) -> None:
        """Open ``video`` for ``session`` with ``preset``; the previous workspace closes only on success.

        The file is first linked (or copied) into the session's own folder under a fixed name, so
        the name someone gave their upload is never part of a path the app opens or serves.
        ``source`` is what the video input held (default: ``video``), to notice a new upload.
        """
        self._check_idle(session, "open another video")
        workdir = session.new_run_dir("video")
        workspace = None
        try:
            private = private_copy(video, workdir)
            workspace = self.services.open_workspace(private, self.services.settings_for(preset), workdir)
            self._check_length(workspace)
        except BaseException:
            if workspace is not None:
                workspace.close()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        session.reset_video()
        session.workspace = workspace
        session.video_path = private
        session.source = str(video) if source is None else source
        self.store.sweep()

    def _length_limit(self):
        from tracker.pipeline import LengthLimit

        return LengthLimit(
            max_frames=self.services.max_frames,
            max_seconds=self.services.max_seconds,
            fix="cut out the part you need (any video editor can) and upload that",
        )

    def _check_length(self, workspace) -> None:
        self._length_limit().check(workspace.info)

    @staticmethod
    def _check_idle(session: UISession, action: str) -> None:
        """Edits wait for a running track: SAM 2's state is in use until it stops."""
        if session.tracking:
            raise InputError(f"Tracking is running: press Stop (or let it finish), then {action}.")

    # ------------------------------------------------------------------ step 2: find
    @staticmethod
    def validate_find(session, video, prompt, negative, preset):
        return [
            gr.validate(True, ""),
            gr.validate(bool(video), text.NO_VIDEO),
            gr.validate(bool((prompt or "").strip()), text.NO_PROMPT),
            gr.validate(True, ""),
            gr.validate(True, ""),
        ]

    @guarded
    def find(
        self,
        session: UISession | None,
        video: str | None,
        prompt: str,
        negative: str,
        preset: str | None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's documented idiom)
    ):
        """Rank frames for the prompt; the gallery fills as each frame's candidates arrive."""
        session = self.session(session, request)
        if not video:
            raise InputError(text.NO_VIDEO)
        if not (prompt or "").strip():
            raise InputError(text.NO_PROMPT)
        self._check_idle(session, "search again")
        ws = session.workspace
        wanted = self.services.settings_for(preset).preset
        if ws is None or session.source != str(Path(video)) or ws.settings.preset != wanted:
            self._open(session, Path(video), preset)
        # objects already picked stay: a second search can add a different kind of object
        ws = self.workspace(session)
        session.accepted = {}
        session.selected_candidate = None
        session.thumbnails = {}
        for note in prompt_notes(prompt):
            gr.Warning(note)
        # while it runs the progress bar sits on the status line and says everything
        progress(0.0, desc="Starting…")
        yield FindView(session, [], "")
        for event in ws.find_candidates(prompt, negative or None, cancel=session.cancel):
            session.touch()  # a long search is not an idle tab (the disk cap closes idle ones)
            count = len(event.candidates)
            so_far = f" · {count} candidate{'s' if count != 1 else ''} so far" if count else ""
            progress(min(max(event.progress, 0.0), 1.0), desc=f"{event.message}{so_far}")
            if event.new_frame is not None:
                yield FindView(session, self._gallery(session, event.candidates), "")
        yield FindView(session, self._gallery(session, ws.candidates), self._find_status(ws))

    @staticmethod
    def _find_status(ws: WorkspaceLike) -> str:
        count = len(ws.candidates)
        if not count:
            return "No candidates: try another prompt, or click on the object in step 3 yourself."
        shown = min(count, MAX_CANDIDATES_SHOWN)
        more = f", top {shown} shown" if count > shown else ""
        return f"**{count} candidate{'s' if count != 1 else ''}** (best first{more}). Click one to follow it."

    def _gallery(self, session: UISession, candidates) -> list[tuple[np.ndarray, str]]:
        ws = self.workspace(session)
        cache = session.thumbnails
        accepted = {
            index: object_id for index, object_id in session.accepted.items() if object_id in ws.objects
        }
        items, shown = [], set()
        for rank, candidate in enumerate(candidates[:MAX_CANDIDATES_SHOWN]):
            # the rank is drawn on the picture, so a candidate that moves in the ranking is redrawn
            key = (
                rank,
                candidate.frame_idx,
                tuple(round(v) for v in candidate.box),
                round(candidate.score, 3),
            )
            if key not in cache:
                drawn = self.services.draw_candidate(ws.frame(candidate.frame_idx), candidate.mask, rank + 1)
                cache[key] = _thumbnail(drawn)
            # the object first: a long caption is cut at the end
            made = f" · ✓ object {accepted[rank]}" if rank in accepted else ""
            caption = f"#{rank + 1}{made} · {_score_text(candidate)} · {text.format_time(candidate.time)} (frame {candidate.frame_idx})"
            items.append((cache[key], caption))
            shown.add(key)
        # pictures of places no longer shown go (a re-ranked list redraws the moved ones)
        session.thumbnails = {key: image for key, image in cache.items() if key in shown}
        return items

    @guarded
    def after_find(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self.session(session, request)
        ws = self.workspace(session)
        if ws.candidates and not ws.objects:
            session.frame_idx = ws.candidates[0].frame_idx
        return self.refine_view(session)

    @guarded
    def pick_candidate(
        self, session: UISession | None, evt: gr.SelectData, request: gr.Request = None
    ) -> RefineView:
        """A gallery click: follow that candidate as a new object (or go back to it)."""
        session = self.session(session, request)
        ws = self.workspace(session)
        self._check_idle(session, "pick a candidate")
        index = int(evt.index) if not isinstance(evt.index, (list, tuple)) else int(evt.index[0])
        session.selected_candidate = index
        existing = session.accepted.get(index)
        if existing in ws.objects:
            session.object_id = existing
            session.frame_idx = ws.candidates[index].frame_idx
            return self.refine_view(session, f"Candidate #{index + 1} is already object {existing}.")
        ws.accept_candidate(index)
        obj = next(reversed(ws.objects.values()))
        session.accepted[index] = obj.object_id
        session.object_id = obj.object_id
        session.frame_idx = ws.candidates[index].frame_idx
        session.box_start = None
        return self.refine_view(session, f"Following candidate #{index + 1} as **{escape(obj.name)}**.")

    @guarded
    def use_selected(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        """Put the last clicked candidate's mask on the current object (to restart it from there)."""
        session = self.session(session, request)
        ws = self.workspace(session)
        self._check_idle(session, "use the candidate")
        index = _selected_candidate(session, ws, "Click a candidate in the list first.")
        object_id = self._current_object(session)
        ws.accept_candidate(index, object_id)
        if object_id is None:
            object_id = next(reversed(ws.objects))
        session.object_id = object_id
        session.accepted[index] = object_id
        session.frame_idx = ws.candidates[index].frame_idx
        return self.refine_view(session, f"Object {object_id} now starts from candidate #{index + 1}.")

    @guarded
    def reject_candidate(self, session: UISession | None, request: gr.Request = None) -> FindView:
        """*Not this one*: the selected candidate leaves the gallery, its look counts against the
        others (now and in later searches), and the object it became, if any, is removed."""
        session = self.session(session, request)
        ws = self.workspace(session)
        self._check_idle(session, "reject a candidate")
        index = _selected_candidate(
            session, ws, "Click the wrong candidate in the list first, then press Not this one."
        )
        object_id = session.accepted.get(index)
        note = f"Candidate #{index + 1} rejected: the ones that look like it now rank lower."
        if object_id in ws.objects:  # first, so its look no longer lifts the look-alikes
            note += f" Removed **{escape(ws.objects[object_id].name)}**."
            ws.remove_object(object_id)
            if session.object_id == object_id:
                session.object_id = None
        _remap(session, ws.reject_candidate(index))
        session.selected_candidate = None
        return FindView(session, self._gallery(session, ws.candidates), note)

    @guarded
    def more_like(self, session: UISession | None, request: gr.Request = None) -> FindView:
        """*Find more like this*: the gallery re-ranked by likeness to the current object."""
        session = self.session(session, request)
        ws = self.workspace(session)
        object_id = self._current_object(session)
        if object_id is None:
            raise InputError("Pick a candidate first: more like it are then ranked first.")
        _remap(session, ws.more_like(object_id))
        name = escape(ws.objects[object_id].name)
        status = f"Candidates re-ranked by their likeness to **{name}**."
        return FindView(session, self._gallery(session, ws.candidates), status)

    @guarded
    def gallery_selection(self, session: UISession | None, request: gr.Request = None) -> Any:
        """The gallery's highlight on the selected candidate where the re-ranking moved it (or
        none): the page keeps the highlight on the place that was clicked, not on the candidate."""
        session = self.session(session, request)
        selected = session.selected_candidate
        return gr.update(selected_index=-1 if selected is None else selected)  # the page ignores None

    @guarded
    def find_view(self, session: UISession | None, request: gr.Request = None) -> FindView:
        session = self.session(session, request)
        if session.workspace is None or not session.workspace.candidates:
            return FindView(session, [], text.NO_CANDIDATES_YET)
        ws = session.workspace
        return FindView(session, self._gallery(session, ws.candidates), self._find_status(ws))

    # ------------------------------------------------------------------ step 3: refine
    def refine_view(self, session: UISession, note: str = "") -> RefineView:
        ws = session.workspace
        if ws is None:
            return RefineView(
                session,
                None,
                gr.update(minimum=0, maximum=1, value=0, interactive=False, label="Frame"),
                gr.update(choices=[], value=None),
                "",
                "",
                text.NO_VIDEO,
            )
        last = max(ws.info.num_frames - 1, 0)
        session.frame_idx = min(max(int(session.frame_idx), 0), last)
        object_id = self._current_object(session)
        frame = _enlarge(ws.preview(session.frame_idx), display_scale(ws.info.width))
        slider = gr.update(
            minimum=0,
            maximum=max(last, 1),
            value=session.frame_idx,
            step=1,
            interactive=last > 0,
            label=f"Frame {session.frame_idx} of {last} · {text.format_time(ws.info.time_of(session.frame_idx))}",
        )
        choices = [(f"{o.object_id} · {o.name}", o.object_id) for o in ws.objects.values()]
        objects = gr.update(choices=choices, value=object_id)
        name = ws.objects[object_id].name if object_id is not None else ""
        return RefineView(
            session,
            frame,
            slider,
            objects,
            self._legend(ws, object_id),
            name,
            self._refine_status(session, note),
        )

    @staticmethod
    def _legend(ws: WorkspaceLike, current: int | None) -> str:
        if not ws.objects:
            return '<div class="legend empty">No objects yet: click a candidate above, or click on the picture.</div>'
        prompted: dict[int, int] = {}
        for prompt in ws.prompts():
            prompted[prompt.object_id] = prompted.get(prompt.object_id, 0) + 1
        chips = []
        for obj in ws.objects.values():
            r, g, b = obj.color
            frames = prompted.get(obj.object_id, 0)
            detail = f"{frames} frame{'s' if frames != 1 else ''} prompted" if frames else "no clicks yet"
            chips.append(
                f'<span class="chip{" current" if obj.object_id == current else ""}">'
                f'<span class="swatch" style="background: rgb({r},{g},{b})"></span>'
                f"<b>{obj.object_id}</b> {escape(obj.name)} <small>{detail}</small></span>"
            )
        return f'<div class="legend">{"".join(chips)}</div>'

    def _refine_status(self, session: UISession, note: str = "") -> str:
        ws = session.workspace
        if ws is None:
            return text.NO_VIDEO
        object_id = session.object_id if session.object_id in ws.objects else None
        mode = dict((value, label) for label, value in text.MODE_CHOICES).get(session.mode, session.mode)
        if object_id is None:
            target = "a new object"
        else:
            target = f"**{object_id} · {escape(ws.objects[object_id].name)}**"
        parts = [f"Clicks go to {target} as *{mode}*."]
        if session.mode == "box" and session.box_start is not None:
            x, y = session.box_start
            parts.append(f"First corner at ({x:.0f}, {y:.0f}): now click the opposite corner.")
        if note:
            parts.append(note)
        return " ".join(parts)

    @guarded
    def refine(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        return self.refine_view(self.session(session, request))

    @guarded
    def click(self, session: UISession | None, evt: gr.SelectData, request: gr.Request = None) -> RefineView:
        """A click on the frame: a point (positive/negative) or one corner of a box."""
        session = self.session(session, request)
        ws = self.workspace(session)
        self._check_idle(session, "click again")
        # the picture may be shown enlarged (small videos): back to working-video pixels
        scale = display_scale(ws.info.width)
        x, y = (float(v) / scale for v in evt.index[:2])
        if session.mode == "box":
            if session.box_start is None:
                FramePrompt(1, session.frame_idx, [(x, y)], [1]).validate(ws.info.width, ws.info.height)
                session.box_start = (x, y)
                view = self.refine_view(session)
                return view._replace(frame=gr.skip())
            x0, y0 = session.box_start
            session.box_start = None
            box = (min(x0, x), min(y0, y), max(x0, x), max(y0, y))
            object_id = self._object_for(session, FramePrompt(1, session.frame_idx, box=box))
            ws.set_box(object_id, session.frame_idx, box)
            return self.refine_view(session, "Box set.")
        label = 0 if session.mode == "negative" else 1
        object_id = self._object_for(session, FramePrompt(1, session.frame_idx, [(x, y)], [label]))
        ws.add_click(object_id, session.frame_idx, x, y, positive=bool(label))
        return self.refine_view(session)

    def _object_for(self, session: UISession, first_prompt: FramePrompt) -> int:
        """The object a prompt goes to; a new one only if ``first_prompt`` is valid on its own.

        A click the library would refuse (outside the frame, a box with no area, only a negative
        click) must not leave an empty new object behind.
        """
        object_id = self._current_object(session)
        if object_id is None:
            ws = self.workspace(session)
            first_prompt.validate(ws.info.width, ws.info.height)
            object_id = self._current_object(session, create=True)
        return object_id

    @guarded
    def set_mode(self, session: UISession | None, mode: str, request: gr.Request = None):
        session = self.session(session, request)
        session.mode = mode if mode in ("positive", "negative", "box") else "positive"
        session.box_start = None
        return session, self._refine_status(session)

    @guarded
    def goto_frame(
        self, session: UISession | None, frame_idx: float, request: gr.Request = None
    ) -> RefineView:
        session = self.session(session, request)
        self.workspace(session)
        session.frame_idx = int(round(frame_idx or 0))
        session.box_start = None
        return self.refine_view(session)

    @guarded
    def select_object(
        self, session: UISession | None, object_id: int | None, request: gr.Request = None
    ) -> RefineView:
        session = self.session(session, request)
        ws = self.workspace(session)
        if object_id is not None and int(object_id) in ws.objects:
            session.object_id = int(object_id)
            session.box_start = None
        return self.refine_view(session)

    @guarded
    def add_object(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self.session(session, request)
        ws = self.workspace(session)
        obj = ws.add_object(None)
        session.object_id = obj.object_id
        session.box_start = None
        return self.refine_view(session, f"Added **{escape(obj.name)}**: click on it.")

    @guarded
    def rename_object(self, session: UISession | None, name: str, request: gr.Request = None) -> RefineView:
        session = self.session(session, request)
        ws = self.workspace(session)
        object_id = self._current_object(session)
        if object_id is None:
            raise InputError("There is no object to rename yet: pick a candidate or click on the picture.")
        ws.rename_object(object_id, name)
        return self.refine_view(session)

    @guarded
    def remove_object(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self.session(session, request)
        ws = self.workspace(session)
        self._check_idle(session, "remove the object")
        object_id = self._current_object(session)
        if object_id is None:
            raise InputError("There is no object to remove.")
        name = ws.objects[object_id].name
        ws.remove_object(object_id)
        session.accepted = {i: o for i, o in session.accepted.items() if o != object_id}
        session.object_id = None
        return self.refine_view(session, f"Removed {escape(name)}.")

    @guarded
    def undo(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self.session(session, request)
        self._check_idle(session, "undo")
        done = self.workspace(session).undo()
        session.box_start = None
        return self.refine_view(session, "" if done else "Nothing to undo.")

    @guarded
    def redo(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        session = self.session(session, request)
        self._check_idle(session, "redo")
        done = self.workspace(session).redo()
        return self.refine_view(session, "" if done else "Nothing to redo.")

    @guarded
    def clear_frame(self, session: UISession | None, request: gr.Request = None) -> RefineView:
        """Forget the current object's clicks and mask on this frame."""
        session = self.session(session, request)
        ws = self.workspace(session)
        self._check_idle(session, "clear the frame")
        object_id = self._current_object(session)
        session.box_start = None
        if object_id is None or not any(
            p.object_id == object_id and p.frame_idx == session.frame_idx for p in ws.prompts()
        ):
            return self.refine_view(session, "Nothing to clear on this frame.")
        ws.clear_frame(session.frame_idx, object_id)
        return self.refine_view(session, "Cleared this frame.")

    @guarded
    def load_brush(self, session: UISession | None, request: gr.Request = None):
        """Put the current frame (with its masks) into the brush editor."""
        session = self.session(session, request)
        ws = session.workspace
        if ws is None:
            return session, None, text.NO_VIDEO
        object_id = self._current_object(session)
        target = f"**{escape(ws.objects[object_id].name)}**" if object_id is not None else "a new object"
        where = f"Painting {target} on frame {session.frame_idx}."
        background = _enlarge(ws.preview(session.frame_idx), display_scale(ws.info.width))
        return session, {"background": background, "layers": [], "composite": None}, where

    @guarded
    def apply_brush(
        self, session: UISession | None, editor: dict | None, mode: str, request: gr.Request = None
    ) -> RefineView:
        session = self.session(session, request)
        ws = self.workspace(session)
        self._check_idle(session, "use the brush")
        painted = _painted_mask(editor, (ws.info.height, ws.info.width))
        if painted is None or not painted.any():
            raise InputError("Paint over the object first (the brush is in the editor's toolbar).")
        object_id = self._current_object(session)
        current = None
        result = ws.result_at(session.frame_idx) if object_id is not None else None
        if result is not None:
            current = result.mask_of(object_id)
        if mode == "add" and current is not None:
            painted = painted | current
        elif mode == "erase":
            if current is None:
                raise InputError("This object has no mask on this frame to erase from.")
            painted = current & ~painted
            if not painted.any():
                raise InputError(
                    "That would erase the whole mask: to take this frame's prompt back, press Clear frame."
                )
        if object_id is None:
            object_id = self._current_object(session, create=True)
        ws.set_mask(object_id, session.frame_idx, painted)
        return self.refine_view(session, "Brushed mask applied.")

    # ------------------------------------------------------------------ step 4: track
    @guarded
    def track(
        self,
        session: UISession | None,
        direction: str,
        discover: bool = False,
        discover_every: float | None = None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ):
        """Propagate every object; stream the overlay (or live frames) while it runs.

        With ``discover``, look for more of the prompt every ``discover_every`` frames while
        tracking (:mod:`tracker.discovery`): new objects join the list as they are confirmed."""
        session = self.session(session, request)
        ws = self.workspace(session)
        if session.tracking:
            raise InputError("Tracking is already running; press Stop first.")
        direction = direction if direction in ("both", "forward", "backward") else "both"
        streaming = self.services.streaming
        session.cancel.clear()
        session.tracking = True
        run_dir = session.new_run_dir("track")
        session.track_started = time.time()
        stream = SegmentStream(run_dir / "segments", ws.info.fps, (ws.info.width, ws.info.height),
                               self.services.open_segment_writer)  # fmt: skip
        last_live = 0.0
        live_hidden = gr.update(visible=False)
        try:
            progress(0.0, desc="Loading SAM 2…")
            yield TrackView(
                session, None, live_hidden if streaming else gr.update(value=None, visible=True), ""
            )
            # the progress bar on the status line says it all while running
            # the switch is on by default: without a prompt (objects made by clicks alone) there
            # is nothing to look for, so the run tracks what is there and the status says so
            options = _discovery_options(discover and bool(ws.prompt_text), discover_every)
            note = text.DISCOVER_NO_PROMPT if discover and not ws.prompt_text else ""
            found = ws.found
            seen = len(found)
            for event in ws.track(direction=direction, cancel=session.cancel, **options):
                if not event.replay:
                    news = [_found_line(ws, r) for r in found[seen:]]
                    seen = len(found)
                    progress(event.done / max(event.total, 1), desc="; ".join([_track_desc(event), *news]))
                if streaming and (event.replay or event.direction == "forward"):
                    # in frame order: a "both" run replays its backward leg just before the forward one
                    segment = stream.add(event.overlay)
                    if segment is not None:
                        yield TrackView(session, segment, live_hidden, "")
                elif not event.replay and time.monotonic() - last_live >= LIVE_FRAME_EVERY:
                    last_live = time.monotonic()
                    live = gr.update(value=event.overlay, visible=True)
                    yield TrackView(session, None if streaming else gr.skip(), live, "")
            yield self._track_done(session, ws, direction, stream, run_dir, progress, note)
        finally:
            stream.abort()
            session.tracking = False

    def _track_done(
        self, session: UISession, ws, direction: str, stream, run_dir: Path, progress, note: str = ""
    ) -> TrackView:
        """The last view of a run: the whole overlay (or the stream's last segment) and what was kept."""
        streaming = self.services.streaming
        segment = stream.flush()
        done = len(ws.store)
        if direction != "both" and done and (not streaming or not stream.segments):
            # one-way runs do not write the in-order overlay: render what is tracked now
            progress(1.0, desc="Rendering the overlay…")
            rendered = ws.render_overlay(run_dir / "overlay.mp4")
            segment = rendered if streaming else segment
        session.last_overlay = ws.last_overlay
        if session.cancel.is_set():
            status = f"Stopped. The {done} frames tracked so far are kept."
        else:
            status = f"Done: {done} frames tracked. Review them below, or download the results."
        status += _found_sentence(ws) + (f" {note}" if note else "")
        if streaming:
            return TrackView(session, segment, gr.update(visible=False), status)
        return TrackView(session, _existing(ws.last_overlay), gr.update(visible=False), status)

    @guarded
    def stop(self, session: UISession | None, request: gr.Request = None) -> str:
        session = self.session(session, request)
        if not session.tracking:
            return gr.skip()
        session.stopping = True
        session.cancel.set()
        return "Stopping after the current frame…"

    @guarded
    def after_stop(self, session: UISession | None, request: gr.Request = None) -> TrackView:
        """After Stop cancelled the run: wait for the frame in flight, then show what was kept."""
        session = self.session(session, request)
        if not session.stopping:
            return TrackView(session, gr.skip(), gr.skip(), gr.skip())
        deadline = time.monotonic() + 120
        while session.tracking and time.monotonic() < deadline:
            time.sleep(0.05)
        session.stopping = False
        ws = session.workspace
        if ws is None:
            return TrackView(session, gr.skip(), gr.update(visible=False), "Stopped.")
        done = len(ws.store)
        if not done:
            return TrackView(
                session, gr.skip(), gr.update(visible=False), "Stopped before any frame was tracked."
            )
        overlay = self._partial_overlay(session, ws)
        session.last_overlay = overlay
        status = f"Stopped. The {done} frames tracked so far are kept."
        # a streamed output takes a finished file only as FileData (its postprocess passes values through)
        video = FileData(path=str(overlay)) if self.services.streaming else str(overlay)
        return TrackView(session, video, gr.update(visible=False), status)

    @staticmethod
    def _partial_overlay(session: UISession, ws: WorkspaceLike) -> Path:
        """The overlay of what a stopped run kept: the workspace's own partial file, else a fresh render."""
        written = ws.last_overlay
        if (
            written is not None
            and Path(written).is_file()
            and Path(written).stat().st_mtime >= session.track_started
        ):
            return Path(written)
        return ws.render_overlay(session.workdir / f"stopped-{session.runs:03d}.mp4")

    # ------------------------------------------------------------------ step 6: projects (steps 5 and 6's
    # review and downloads are ui/review.py's ReviewLoop)
    @guarded
    def open_project(
        self, session: UISession | None, project_file: str | None, request: gr.Request = None
    ) -> RefineView:
        session = self.session(session, request)
        if not project_file:
            return self.refine_view(session)
        if session.workspace is None:
            raise InputError(
                "Upload the video this project was made for first (step 1), then open the project."
            )
        self._check_idle(session, "open the project")
        ws = session.workspace
        ws.load_project(Path(project_file))
        session.accepted = {}
        session.object_id = None
        prompted = ws.prompted_frames()
        session.frame_idx = prompted[0] if prompted else 0
        return self.refine_view(session, f"Project opened: {len(ws.objects)} object(s).")

    def reset_track(self, session: UISession | None, request: gr.Request = None) -> TrackView:
        session = self.session(session, request)
        return TrackView(session, None, gr.update(value=None, visible=not self.services.streaming), "")

    # ------------------------------------------------------------------ the batch API
    def api_track(
        self,
        video: str,
        prompt: str,
        negative_prompt: str | None = None,
        preset: str | None = None,
        max_objects: float | None = None,
        discover: bool | None = None,
        discover_every: float | None = None,
    ):
        """Find the prompt in the video, track the best match(es) and return the overlay video and a zip of every annotation.

        Parameters:
            video: the video file (mp4, mov, webm, …).
            prompt: what to follow, e.g. "red sneaker" (be specific).
            negative_prompt: what not to pick (optional).
            preset: speed/quality preset: fast, balanced, quality or best (optional; default: this machine's).
            max_objects: how many distinct matches on the best frame to follow, 1–10 (optional; default 1).
            discover: also find new objects while tracking (optional; default: this server's, on unless it runs on random weights or ZeroGPU).
            discover_every: frames between two discovery checks (optional; default the settings').
        Returns:
            overlay: the video with masks, ids and trails drawn (mp4).
            annotations: a zip with PNG masks, COCO, YouTube-VIS, MOT, trajectories, candidates, the flagged frames and the manifest.
        """
        try:
            return self._api_track(
                video, prompt, negative_prompt, preset, max_objects, discover, discover_every
            )
        except Exception as error:
            from .guard import user_error

            raise user_error(error) from None

    def _api_track(
        self, video, prompt, negative_prompt, preset, max_objects, discover=None, discover_every=None
    ):
        from tracker.pipeline import track_video

        if not video:
            raise InputError("Pass a video file.")
        if not (prompt or "").strip():
            raise InputError(text.NO_PROMPT)
        try:
            count = min(max(int(max_objects or 1), 1), 10)
        except (TypeError, ValueError, OverflowError):
            raise InputError("max_objects must be a whole number from 1 to 10.") from None
        settings = _with_discovery(self.services.settings_for(preset or None), discover, discover_every)
        folder = self.store.new_folder("api")
        try:
            summary = track_video(
                private_copy(Path(video), folder),
                folder / "out",
                settings,
                prompt,
                negative=negative_prompt or None,
                max_objects=count,
                limit=self._length_limit(),
                open_workspace=self.services.open_workspace,
            )
        finally:
            self.store.release(folder)
        return str(summary.files["overlay"]), str(summary.files["zip"])


# ---------------------------------------------------------------------- small translations
MAX_DISCOVER_EVERY = 10_000  # frames; /track refuses a longer interval


def _with_discovery(settings, discover: bool | None, every: float | None):
    """``settings`` with /track's ``discover`` / ``discover_every`` (``discover`` None: the
    settings' choice; ``every`` None: the settings')."""
    if discover is None:
        discover = bool(settings.discover)
    if not discover:
        return dataclasses.replace(settings, discover=False)
    if every is None or every == "":
        return dataclasses.replace(settings, discover=True)
    try:
        frames = int(every)
        whole = float(every) == frames
    except (TypeError, ValueError, OverflowError):
        frames, whole = 0, False
    if not (whole and 1 <= frames <= MAX_DISCOVER_EVERY):
        raise InputError(f"discover_every must be a whole number of frames from 1 to {MAX_DISCOVER_EVERY}.")
    return dataclasses.replace(settings, discover=True, discover_every=frames)


def private_copy(upload: Path, folder: Path) -> Path:
    """``upload`` as ``folder/video<ext>``: hard-linked when possible, else copied.

    Only the extension of the upload's name survives, and only when it is short and
    alphanumeric (FFmpeg reads the content anyway); the rest of the name is never used.
    """
    suffix = Path(upload).suffix.lower()
    target = Path(folder) / ("video" + (suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""))
    if not Path(upload).is_file():
        raise VideoError("The uploaded video is gone from the server (uploads expire); upload it again.")
    try:
        os.link(upload, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(upload, target)
    return target


def display_scale(width: int) -> int:
    """Whole-number enlargement for showing a ``width``-pixel frame at least DISPLAY_MIN_WIDTH wide."""
    return max(1, DISPLAY_MIN_WIDTH // max(int(width), 1))


def _enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _score_text(candidate: Any) -> str:
    """``score 31.2``, or ``score 31.2 (text 29.0)`` when the exemplars moved it."""
    text_score = candidate.text_score if candidate.text_score is not None else candidate.score
    if abs(candidate.score - text_score) < 0.05:
        return f"score {candidate.score:.1f}"
    return f"score {candidate.score:.1f} (text {text_score:.1f})"


def _remap(session: UISession, order: list[int]) -> None:
    """The session's candidate-index state after the workspace re-ranked its candidates
    (``order[new] = old``; an index not in it is a candidate gone)."""
    new_of = {old: new for new, old in enumerate(order)}
    session.accepted = {new_of[i]: o for i, o in session.accepted.items() if i in new_of}
    selected = session.selected_candidate
    session.selected_candidate = None if selected is None else new_of.get(selected)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    if width <= THUMBNAIL_WIDTH:
        return image
    scale = THUMBNAIL_WIDTH / width
    size = (THUMBNAIL_WIDTH, max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def _painted_mask(editor: dict | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The union of the editor's brush layers as an H×W bool mask at the frame's size."""
    if not editor:
        return None
    painted = None
    for layer in editor.get("layers") or []:
        if layer is None:
            continue
        layer = np.asarray(layer)
        alpha = (
            layer[..., 3] > 0
            if layer.ndim == 3 and layer.shape[2] == 4
            else layer.reshape(layer.shape[:2] + (-1,)).any(axis=2)
        )
        if alpha.shape != shape:
            alpha = resize_mask(alpha, shape[1], shape[0])
        painted = alpha if painted is None else painted | alpha
    return painted


def _track_desc(event) -> str:
    """The progress line of one tracked frame (a :class:`tracker.workspace.TrackEvent`)."""
    eta = f" · {text.time_left(event.eta_seconds)}" if event.eta_seconds is not None else ""
    return f"{event.direction.capitalize()}: frame {event.result.frame_idx} · {event.done}/{event.total}{eta}"


def _existing(path: Path | None) -> str | None:
    return str(path) if path is not None and Path(path).is_file() else None


__all__ = ["FindView", "Handlers", "RefineView", "TrackView"]
