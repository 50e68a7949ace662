"""One person's work on one video: the object the CLI and the web app both drive.

A :class:`Workspace` owns the decoded video, the ranked candidates, the tracking session, the
compact per-frame results and the edit history. Long operations are generators of progress
events so a caller can stream them (the web app) or print them (the CLI); each takes a
``cancel`` :class:`threading.Event` checked between frames and keeps what was done before the
stop. All methods are safe to call from several threads (one lock per workspace); models are
shared between workspaces through a :class:`tracker.models.ModelHub`, whose per-model lock is
held around model work.

Every edit (a click, a box, a brushed mask, an accepted candidate, removing or renaming an
object) is recorded in order (:class:`tracker.edits.EditLog`). Undo and redo rebuild SAM 2's
state by replaying that record, which is also what a project file stores, so reopening a
project reproduces the work. Tracking runs the session's legs (:meth:`TrackingSession.plan`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .edits import Edit, EditLog
from .errors import Cancelled, InputError, ProjectError, TrackerError
from .masks import MaskStats, decode_rle, encode_mask, mask_iou, stack_stats
from .settings import Settings, resolve_settings
from .types import Box, Candidate, FramePrompt, FrameResult, TrackedObject, VideoInfo, color_for

if TYPE_CHECKING:
    from .discovery import CheckReport, Detector, Discovery, DiscoveryConfig, ExemplarBank, FoundRecord
    from .flags import Flag
    from .session import Leg, TrackingSession

logger = logging.getLogger(__name__)


@dataclass
class FindEvent:
    """Progress of :meth:`Workspace.find_candidates`."""

    stage: str  # "decode" | "rank" | "masks" | "score" | "done"
    progress: float  # 0..1 over the whole find
    message: str
    candidates: list[Candidate] = field(default_factory=list)  # all so far, best first
    new_frame: int | None = None  # frame whose candidates just arrived


@dataclass
class TrackEvent:
    """One frame of :meth:`Workspace.track` / :meth:`Workspace.retrack`.

    ``direction`` is the leg's (``"forward"`` / ``"backward"``). A ``replay`` event is a frame
    tracked earlier in the run, drawn again from the stored results: a ``"both"`` run that
    writes the overlay replays the frames before the first prompt (its backward leg's) just
    before the forward leg, so the overlay and anything streamed from these events are in
    frame order. Replayed frames are not counted in ``done``.
    """

    result: FrameResult
    overlay: np.ndarray  # H×W×3 uint8, the frame with masks, ids and trails drawn
    done: int  # frames tracked so far in this run
    total: int  # frames this run will track
    eta_seconds: float | None
    direction: str = "forward"
    replay: bool = False


class Workspace:
    """See the module docstring. Build with :meth:`open`."""

    def __init__(self, info: VideoInfo, reader, hub, settings: Settings, workdir: Path) -> None:
        from .devices import autocast as autocast_context
        from .devices import pick_device
        from .results import ResultStore

        self.info = info
        self.reader = reader
        self.hub = hub
        self.settings = settings
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.device = pick_device(settings.device)
        self._autocast = autocast_context
        self.objects: dict[int, TrackedObject] = {}
        self.candidates: list[Candidate] = []
        self.prompt_text = ""
        self.negative_text: str | None = None
        self.store = ResultStore(info.width, info.height, info.num_frames)
        self._lock = threading.RLock()
        self._session: TrackingSession | None = None
        self._edits = EditLog(self._apply, self._reset_live)
        self._prompts: dict[tuple[int, int], FramePrompt] = {}  # (object_id, frame) → current prompt
        self._prompt_results: dict[int, FrameResult] = {}  # frame → masks after the last edit there
        self._stale_objects: set[int] = set()  # edited since last tracked
        self.last_overlay: Path | None = None
        self.last_retrack_frames: list[int] = []  # frames the last retrack() rewrote
        self.found: list[FoundRecord] = []  # how each object was found, in order (tracker.discovery)
        self.last_discovery: Discovery | None = None  # the last track()'s discovery (checks, timings)
        # builds discovery's detector instead of the CLIP one (tests plug stand-ins in here)
        self.discovery_detector: Callable[[Workspace], Detector] | None = None
        # builds the tracking session instead of SAM 2's TrackingSession (tests plug stand-ins in
        # here; the stand-in must offer what this class calls on a session)
        self.session_factory: Callable[[Workspace], Any] | None = None
        # each object's look, kept across runs; a removed object's becomes a negative exemplar
        self.exemplars: ExemplarBank | None = None
        self.cancel_event = threading.Event()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, video: Path, hub, settings: Settings, workdir: Path) -> Workspace:
        """Probe and open ``video`` with ``settings`` resolved for the device.

        ``workdir`` is this workspace's private folder (overlay, exports).
        """
        from .video import VideoReader, probe

        settings = resolve_settings(settings)
        info = probe(
            Path(video), max_size=settings.max_size, start=settings.start_time, end=settings.end_time
        )
        reader = VideoReader(info)
        logger.info(
            "opened %s: %d frames, %.2f fps, %dx%d (source %dx%d, rotation %d)",
            Path(video).name,
            info.num_frames,
            info.fps,
            info.width,
            info.height,
            info.source_width,
            info.source_height,
            info.rotation,
        )
        return cls(info, reader, hub, settings, workdir)

    def close(self) -> None:
        with self._lock:
            self.cancel_event.set()
            self._session = None
            try:
                self.reader.close()
            except Exception:  # closing must never mask the real error
                logger.debug("reader close failed", exc_info=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ models
    def _sam2(self):
        s = self.settings
        return self.hub.sam2(
            s.sam2_model,
            image_size=s.image_size,
            device=self.device,
            random_weights=s.random_weights,
            checkpoint=s.sam2_checkpoint,
            checkpoints_dir=s.checkpoints_dir,
            offline=s.offline,
            compile=s.compile,
        )

    def _clip(self):
        s = self.settings
        return self.hub.clip(
            s.clip_model,
            device=self.device,
            random_weights=s.random_weights,
            checkpoint=s.clip_checkpoint,
            checkpoints_dir=s.checkpoints_dir,
            offline=s.offline,
        )

    def _model_lock(self, model) -> threading.Lock:
        return self.hub.lock_for(model)

    def _autocast_ctx(self):
        return self._autocast(self.device, enabled=self.settings.bf16)

    @property
    def session(self):
        """The tracking session, built on first use (building loads SAM 2)."""
        with self._lock:
            if self._session is None and self.session_factory is not None:
                self._session = self.session_factory(self)
            if self._session is None:
                from .session import TrackingSession

                predictor = self._sam2()
                # Per-frame state is pruned as tracking goes, so it never needs offloading.
                self._session = TrackingSession(predictor, self.reader, autocast=self._autocast_ctx)
            return self._session

    # ------------------------------------------------------------------ frames
    def frame(self, frame_idx: int) -> np.ndarray:
        """Working-resolution RGB frame ``frame_idx`` (H×W×3 uint8)."""
        return self.reader.get(self.info.check_frame(int(frame_idx)))

    # ------------------------------------------------------------------ candidates
    def find_candidates(
        self, prompt: str, negative_prompt: str | None = None, cancel: threading.Event | None = None
    ) -> Iterator[FindEvent]:
        """Rank frames against ``prompt`` and propose masks; yields progress, then candidates.

        The first frame's candidates are yielded as soon as they exist. With random weights the
        best candidates are kept regardless of the threshold (their scores are noise). Once
        objects were accepted or candidates rejected, candidates are ranked by the text and the
        exemplars together (:meth:`ranked`; ``Candidate.text_score`` keeps the text score).
        """
        from .candidates import check_prompt
        from .engine import build_finder

        prompt = check_prompt(prompt)
        negative_prompt = (negative_prompt or "").strip() or None
        cancel = cancel or self.cancel_event
        cancel.clear()
        yield FindEvent("load", 0.0, "Loading models…")
        finder = build_finder(self.hub, self.settings, self.device, self._autocast_ctx)
        found: list[Candidate] = []
        started, first_at = time.perf_counter(), None
        for event in finder.find(self.reader, prompt, negative_prompt, cancel=cancel):
            if event.candidates is not None:
                found = self.ranked(event.candidates)
                with self._lock:
                    self.candidates = found
            if event.new_frame is not None and first_at is None and found:
                first_at = time.perf_counter() - started
            yield FindEvent(event.stage, event.progress, event.message, found, event.new_frame)
        with self._lock:
            self.prompt_text = prompt
            self.negative_text = negative_prompt
            self.candidates = found
        if first_at is not None:
            logger.info(
                "first candidates after %.1f s, all after %.1f s", first_at, time.perf_counter() - started
            )

    # ------------------------------------------------------------------ objects and prompts
    def add_object(self, name: str | None = None, color: tuple[int, int, int] | None = None) -> TrackedObject:
        with self._lock:
            object_id = max(self.objects, default=0) + 1
            obj = TrackedObject(
                object_id, (name or "").strip() or f"object {object_id}", color or color_for(object_id)
            )
            self._record(Edit("object", object_id, name=obj.name, color=obj.color))
            return obj

    def accept_candidate(self, index: int, object_id: int | None = None) -> FrameResult:
        """Start (or restart) an object from candidate ``index``: its mask becomes the prompt."""
        with self._lock:
            if not 0 <= index < len(self.candidates):
                raise InputError(f"There is no candidate {index + 1}; pick one from the list.")
            from .discovery import FoundRecord

            candidate = self.candidates[index]
            new_object = object_id is None
            if object_id is None:
                object_id = self.add_object(self._default_name()).object_id
            result = self._apply_prompt(
                FramePrompt(object_id, candidate.frame_idx, mask=candidate.mask.copy()), fresh=True
            )
            if candidate.embedding is not None:  # the object's look, from the crop Find scored
                bank = self._exemplar_bank()
                if new_object:
                    bank.discard(object_id)  # an id used before (undone, removed) starts afresh
                bank.add(object_id, candidate.embedding)
            self.found.append(
                FoundRecord(object_id, "accepted", candidate.frame_idx, round(float(candidate.score), 2))
            )
            return result

    # ------------------------------------------------------------------ exemplars
    def _exemplar_bank(self) -> ExemplarBank:
        """:attr:`exemplars`, made on first use (the first accepted candidate or rejection)."""
        if self.exemplars is None:
            from .discovery import ExemplarBank

            self.exemplars = ExemplarBank()
        return self.exemplars

    def ranked(self, candidates: list[Candidate]) -> list[Candidate]:
        """``candidates`` re-scored with the exemplars of the objects here and every negative
        one, best first (:func:`tracker.discovery.exemplars.exemplar_ranking`); as they are
        while there are no exemplars."""
        return self._ranking(candidates)[0]

    def _ranking(self, candidates: list[Candidate]) -> tuple[list[Candidate], list[int]]:
        """:meth:`ranked` and the order (old index of each new position)."""
        with self._lock:
            bank = self.exemplars
            if bank is None:
                return list(candidates), list(range(len(candidates)))
            from .discovery import exemplar_ranking

            looks = [oid for oid in bank.object_ids if oid in self.objects]
            return exemplar_ranking(candidates, bank, looks)

    def _check_candidates(self) -> None:
        if not self.candidates:
            raise InputError("There are no candidates yet: run Find first.")

    def _check_candidate(self, index: int) -> Candidate:
        self._check_candidates()
        if not 0 <= index < len(self.candidates):
            raise InputError(f"There is no candidate {index + 1}; pick one from the list.")
        return self.candidates[index]

    def reject_candidate(self, index: int) -> list[int]:
        """*Not this one*: candidate ``index`` leaves :attr:`candidates` and its look becomes a
        negative exemplar (for this list, the next Find and discovery); the rest are re-scored
        and re-ranked (:meth:`ranked`). Returns the new order as the old index of each
        remaining candidate. An object made from it stays: a caller that removes it too does so
        first, so its look no longer lifts the look-alikes in this ranking.
        """
        with self._lock:
            candidate = self._check_candidate(index)
            if candidate.embedding is not None:
                self._exemplar_bank().add_negative(candidate.embedding)
            kept = [i for i in range(len(self.candidates)) if i != index]
            self.candidates, order = self._ranking([self.candidates[i] for i in kept])
            return [kept[i] for i in order]

    def more_like(self, object_id: int) -> list[int]:
        """*Find more like this*: :attr:`candidates` re-ranked by their likeness to
        ``object_id``'s exemplars (:func:`tracker.discovery.exemplars.likeness_ranking`; scores
        unchanged). Returns the new order as the old index of each candidate."""
        with self._lock:
            self._check_candidates()
            self._check_object(object_id)
            bank = self.exemplars
            if bank is None or not bank.exemplars(object_id):
                raise InputError(
                    f"{self.objects[object_id].name} has no look to compare with yet: start it from a "
                    "candidate, or track it with 'Find new ones while tracking' on."
                )
            from .discovery import likeness_ranking

            order = likeness_ranking(self.candidates, bank, object_id)
            self.candidates = [self.candidates[i] for i in order]
            return order

    def _default_name(self) -> str | None:
        name = self.prompt_text or None
        if name and any(o.name == name for o in self.objects.values()):
            name = f"{name} {len(self.objects) + 1}"
        return name

    def best_candidates(self, max_objects: int = 1) -> list[int]:
        """Indices (into :attr:`candidates`) of up to ``max_objects`` distinct instances, best first.

        They come from the best candidate's frame, where candidates were already de-duplicated
        by mask IoU (across frames masks can't be compared, so the same thing seen on two frames
        would become two objects).
        """
        with self._lock:
            if not self.candidates:
                raise InputError("There are no candidates yet: run Find first, or click on the object.")
            best_frame = self.candidates[0].frame_idx
            same_frame = [i for i, c in enumerate(self.candidates) if c.frame_idx == best_frame]
            return same_frame[: max(1, max_objects)]

    def accept_best(self, max_objects: int = 1) -> list[TrackedObject]:
        """Start one object from each of :meth:`best_candidates`; returns the new objects in that order."""
        with self._lock:
            chosen = self.best_candidates(max_objects)
            before = set(self.objects)
            for index in chosen:
                self.accept_candidate(index)
            return [obj for oid, obj in self.objects.items() if oid not in before]

    def add_click(
        self, object_id: int, frame_idx: int, x: float, y: float, positive: bool = True
    ) -> FrameResult:
        """Add a positive (the object) or negative (not the object) click; returns that frame's masks."""
        with self._lock:
            self._check_object(object_id)
            self.info.check_frame(frame_idx)
            current = self._prompts.get((object_id, frame_idx))
            points = list(current.points) if current and current.mask is None else []
            labels = list(current.labels) if current and current.mask is None else []
            box = current.box if current and current.mask is None else None
            points.append((float(x), float(y)))
            labels.append(1 if positive else 0)
            return self._apply_prompt(FramePrompt(object_id, frame_idx, points, labels, box=box))

    def set_box(self, object_id: int, frame_idx: int, box: Box) -> FrameResult:
        with self._lock:
            self._check_object(object_id)
            self.info.check_frame(frame_idx)
            x0, y0, x1, y1 = (float(v) for v in box)
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            current = self._prompts.get((object_id, frame_idx))
            points = list(current.points) if current and current.mask is None else []
            labels = list(current.labels) if current and current.mask is None else []
            return self._apply_prompt(FramePrompt(object_id, frame_idx, points, labels, box=box))

    def set_mask(self, object_id: int, frame_idx: int, mask: np.ndarray) -> FrameResult:
        """Replace the object's mask on ``frame_idx`` (a brushed or imported mask, H×W bool)."""
        with self._lock:
            self._check_object(object_id)
            self.info.check_frame(frame_idx)
            mask = np.asarray(mask).astype(bool)
            return self._apply_prompt(FramePrompt(object_id, frame_idx, mask=mask), fresh=True)

    def clear_frame(self, frame_idx: int, object_id: int | None = None) -> FrameResult:
        """Forget the prompts on ``frame_idx`` (for one object, or all)."""
        with self._lock:
            self.info.check_frame(frame_idx)
            ids = [object_id] if object_id is not None else [o for (o, f) in self._prompts if f == frame_idx]
            for oid in ids:
                self._check_object(oid)
                self._record(Edit("clear", oid, frame_idx=frame_idx))
            return self._prompt_results.get(frame_idx) or FrameResult.empty(
                frame_idx, self.info.height, self.info.width
            )

    def remove_object(self, object_id: int) -> None:
        with self._lock:
            self._check_object(object_id)
            self._record(Edit("remove", object_id))

    def rename_object(self, object_id: int, name: str) -> None:
        with self._lock:
            self._check_object(object_id)
            name = (name or "").strip()
            if not name:
                raise InputError("An object's name can't be empty.")
            self._record(Edit("rename", object_id, name=name[:80]))

    def undo(self) -> bool:
        """Take back the last edit; False when there is nothing to undo."""
        with self._lock:
            self._check_idle()
            return self._edits.undo()

    def redo(self) -> bool:
        with self._lock:
            self._check_idle()
            return self._edits.redo()

    @property
    def can_undo(self) -> bool:
        return self._edits.can_undo

    @property
    def can_redo(self) -> bool:
        return self._edits.can_redo

    def prompts(self) -> list[FramePrompt]:
        """The current prompt of every (object, frame), in frame order."""
        with self._lock:
            return [self._prompts[k] for k in sorted(self._prompts, key=lambda k: (k[1], k[0]))]

    def prompted_frames(self) -> list[int]:
        with self._lock:
            return sorted({f for (_, f) in self._prompts})

    # ------------------------------------------------------------------ edit record
    def _check_object(self, object_id: int) -> None:
        if object_id not in self.objects:
            raise InputError(f"There is no object {object_id}; add an object first.")

    def _check_idle(self) -> None:
        """Refuse an edit before it changes anything while a track run uses SAM 2's state."""
        if self._session is not None and self._session.running:
            raise InputError("Tracking is running: stop it (or let it finish), then edit.")

    def _record(self, edit: Edit) -> FrameResult | None:
        """Apply ``edit`` to the live state and append it to the history (clears redo)."""
        self._check_idle()
        return self._edits.record(edit)

    def _apply_prompt(self, prompt: FramePrompt, fresh: bool = False) -> FrameResult:
        prompt.validate(self.info.width, self.info.height)
        result = self._record(Edit("prompt", prompt.object_id, frame_idx=prompt.frame_idx, prompt=prompt))
        assert result is not None
        return result

    def _apply(self, edit: Edit) -> FrameResult | None:
        """The edit log's hook: ``edit`` onto the live state (objects, prompts, SAM 2's state)."""
        if edit.kind == "object":
            self.objects[edit.object_id] = TrackedObject(
                edit.object_id, edit.name or "", edit.color or color_for(edit.object_id)
            )
            return None
        if edit.kind == "rename":
            obj = self.objects[edit.object_id]
            self.objects[edit.object_id] = dataclasses.replace(obj, name=edit.name or obj.name)
            return None
        if edit.kind == "remove":
            self.objects.pop(edit.object_id, None)
            if self.exemplars is not None:
                self.exemplars.reject_object(edit.object_id)
            for key in [k for k in self._prompts if k[0] == edit.object_id]:
                del self._prompts[key]
            if self._session is not None and edit.object_id in self._session.object_ids:
                self._session.remove_object(edit.object_id)
            self.store.remove_object(edit.object_id)
            for frame_idx, res in list(self._prompt_results.items()):
                self._prompt_results[frame_idx] = res.without(edit.object_id)
            self._stale_objects.discard(edit.object_id)
            return None
        if edit.kind == "clear":
            cleared = edit.frame_idx
            assert cleared is not None, "clear_frame records the frame it clears"
            self._prompts.pop((edit.object_id, cleared), None)
            if self._session is not None and edit.object_id in self._session.object_ids:
                self._session.clear_prompts(cleared, edit.object_id)
            before = self._prompt_results.get(cleared)
            if before is not None:
                self._prompt_results[cleared] = before.without(edit.object_id)
            self._stale_objects.add(edit.object_id)
            return None
        if edit.kind == "prompt":
            assert edit.prompt is not None
            if edit.object_id not in self.objects:
                return None  # replaying: a prompt of an object the history no longer has
            prompt = edit.prompt
            result = self.session.add_prompt(prompt)
            self._prompts[(prompt.object_id, prompt.frame_idx)] = prompt
            self._prompt_results[prompt.frame_idx] = result
            self._stale_objects.add(prompt.object_id)
            return result
        raise ValueError(f"unknown edit {edit.kind}")

    def _reset_live(self) -> None:
        """The edit log's hook before a replay: forget objects, prompts and SAM 2's state."""
        self.objects.clear()
        self._prompts.clear()
        self._prompt_results.clear()
        if self._session is not None:
            self._session.reset()

    # ------------------------------------------------------------------ viewing
    def result_at(self, frame_idx: int) -> FrameResult | None:
        """Masks to show on ``frame_idx``: a fresh prompt result there, else the tracked result."""
        with self._lock:
            prompt_result = self._prompt_results.get(frame_idx)
            tracked = self.store.get(frame_idx)
            if prompt_result is None:
                return tracked.select(self.objects) if tracked is not None else None
            if tracked is None:
                return prompt_result
            # tracked masks for objects the prompt result doesn't cover
            return prompt_result.merge(tracked.select(self.objects))

    def preview(self, frame_idx: int, with_trails: bool = True) -> np.ndarray:
        """The frame with the current masks (prompted or tracked) and the clicks drawn."""
        from .render import draw_overlay

        with self._lock:
            frame = self.frame(frame_idx)
            result = self.result_at(frame_idx)
            points: list[tuple[float, float, int]] = []
            for (_, f), prompt in self._prompts.items():
                if f == frame_idx:
                    points.extend(
                        (x, y, label) for (x, y), label in zip(prompt.points, prompt.labels, strict=True)
                    )
            trails = self._trails_until(frame_idx) if with_trails else None
            return draw_overlay(frame, result, self.objects, trails=trails, points=points)

    def _trails_until(self, frame_idx: int, length: int = 30) -> dict[int, list[tuple[float, float] | None]]:
        trails: dict[int, list[tuple[float, float] | None]] = {}
        for object_id in self.objects:
            points: list[tuple[float, float] | None] = []
            for f in range(max(0, frame_idx - length), frame_idx + 1):
                stats = self.store.stats(f, object_id)
                points.append(None if stats is None or stats.area == 0 else stats.centroid)
            if any(p is not None for p in points):
                trails[object_id] = points
        return trails

    # ------------------------------------------------------------------ tracking
    def planned_frames(self, direction: str = "both") -> int:
        """How many frames :meth:`track` with ``direction`` would track."""
        with self._lock:
            return sum(len(leg) for leg in self._track_legs(None, None, direction))

    def _track_legs(self, start_frame: int | None, end_frame: int | None, direction: str) -> list[Leg]:
        """The session's plan (:meth:`TrackingSession.plan`), from the earliest prompted frame by default."""
        prompted = self.prompted_frames()
        if start_frame is None and prompted:
            start_frame = min(prompted)  # every direction starts there (the session's backward: the latest)
        return self.session.plan(start_frame, end_frame, direction)

    def _check_trackable(self) -> None:
        if not self.objects:
            raise InputError("Nothing to track yet: pick a candidate or click on an object first.")
        unprompted = [
            o.name for o in self.objects.values() if not any(k[0] == o.object_id for k in self._prompts)
        ]
        if unprompted:
            raise InputError(
                f"{', '.join(unprompted)} has no clicks or mask yet: click on it, or remove it, then track."
            )

    def _armed(self, cancel: threading.Event | None) -> threading.Event:
        """The run's stop flag (the workspace's own by default), cleared for a new run."""
        cancel = cancel or self.cancel_event
        cancel.clear()
        return cancel

    def track(
        self,
        start_frame: int | None = None,
        end_frame: int | None = None,
        direction: str = "both",
        cancel: threading.Event | None = None,
        overlay_path: Path | None = None,
        discover: DiscoveryConfig | None = None,
    ) -> Iterator[TrackEvent]:
        """Propagate every object through the video and yield each frame as it is done.

        The legs and their order are the session's (:meth:`TrackingSession.plan`), starting by
        default from the earliest prompted frame: ``"both"`` tracks backward from the frame
        before it to the start, then forward to the end. A whole-video ``"both"`` run writes
        the overlay mp4 at ``overlay_path`` (default ``workdir/overlay.mp4``) in frame order
        while the forward leg runs: just before that leg it yields the backward leg's frames
        again as ``replay`` events (drawn as in the overlay). A cancel stops within a frame;
        what was tracked is kept (and, for a full run, the overlay holds the frames written so
        far).

        With ``discover`` (a :class:`tracker.discovery.DiscoveryConfig`), each leg looks for more
        of the prompt every ``discover.every`` frames (:mod:`tracker.discovery`): new objects
        join :attr:`objects` as they are confirmed (tracked behind the leg to where they entered,
        or left), lost ones get their id back; :attr:`found` records each, :attr:`last_discovery`
        the checks.
        """
        with self._lock:
            self._check_trackable()
            legs = self._track_legs(start_frame, end_frame, direction)
            cancel = self._armed(cancel)
            whole = direction == "both" and start_frame is None and end_frame is None
            overlay_path = Path(overlay_path) if overlay_path else self.workdir / "overlay.mp4"
            discovery = self._start_discovery(discover, legs[0].first, cancel) if discover else None
        yield from self._run_legs(legs, cancel, overlay_path if whole else None, discovery)

    def _run_legs(
        self,
        legs: list[Leg],
        cancel: threading.Event,
        overlay_path: Path | None,
        discovery: Discovery | None = None,
    ) -> Iterator[TrackEvent]:
        """Track ``legs`` in order; write the overlay while the forward leg runs when ``overlay_path``."""
        from .render import TrailHistory

        total = sum(len(leg) for leg in legs)
        started, done = time.perf_counter(), 0
        trails = TrailHistory()
        writer = None
        try:
            for leg in legs:
                if leg.step > 0 and overlay_path is not None:
                    writer = self._overlay_writer(overlay_path)
                    yield from self._replay_frames(range(leg.first), writer, trails, done, total)
                if discovery is not None:
                    discovery.begin_leg(leg.first, leg.step, self._behind_limit(leg, legs))
                run = self.session.propagate(
                    start_frame=leg.first, end_frame=leg.last, direction=leg.direction, cancel=cancel
                )
                for result in run:
                    if discovery is not None:
                        result = self._discover_after(discovery, result)
                    stats = stack_stats(result.masks, result.scores)  # once per mask: store, trails, drawing
                    self.store.put(result, stats)
                    with self._lock:
                        self._prompt_results.pop(result.frame_idx, None)
                    # the forward leg is drawn as the overlay is (with trails); the backward one plainly
                    overlay = self._draw(result, trails if leg.step > 0 else None, stats)
                    if writer is not None:
                        writer.write(overlay)
                    done += 1
                    eta = (time.perf_counter() - started) / done * (total - done)
                    yield TrackEvent(result, overlay, done, total, eta, leg.direction)
                if cancel.is_set():
                    break
            if writer is not None:
                writer.close()
                self.last_overlay = overlay_path
            with self._lock:
                if not cancel.is_set():
                    self._stale_objects.clear()
                if discovery is not None and discovery.records:
                    self.last_overlay = None  # frames tracked back are not in it; export draws it again
        except BaseException:
            if writer is not None:
                self._keep_partial_overlay(writer, overlay_path)
            raise
        if cancel.is_set():
            logger.info("tracking stopped after %d of %d frames", done, total)

    # ------------------------------------------------------------------ discovery
    def _start_discovery(
        self, config: DiscoveryConfig, start_frame: int, cancel: threading.Event
    ) -> Discovery:
        """The forward leg's :class:`~tracker.discovery.Discovery`: Find's machinery on the check
        frames (reusing the session's backbone features), SAM 2's session as the tracker, each
        object's exemplar seeded from its first prompt's mask."""
        import dataclasses as dc

        from .candidates import build_proposer
        from .discovery import Discovery
        from .discovery.detector import ClipDetector, SessionTracker

        if not self.prompt_text:
            raise InputError("Finding new objects while tracking needs a prompt: run Find first.")
        s = self.settings
        predictor = self._sam2()
        proposer = None
        if self.discovery_detector is None:
            proposer = build_proposer(
                "points", predictor, points_per_side=s.points_per_side, random_weights=s.random_weights
            )
        session = self.session
        if not hasattr(session, "add_mask_mid_run"):
            raise InputError("Finding new objects while tracking is not available on this hardware yet; turn it off.")
        detector: Detector = (
            ClipDetector(
                self._clip(),
                proposer,
                self.prompt_text,
                self.negative_text,
                features=session.frame_features,
                model_lock=self._model_lock(predictor),
                autocast=self._autocast_ctx,
            )
            if self.discovery_detector is None
            else self.discovery_detector(self)
        )
        if s.random_weights and self.discovery_detector is None and math.isfinite(config.threshold):
            # untrained scores are noise: no threshold means anything (as Find keeps every candidate)
            config = dc.replace(config, threshold=float("-inf"))
        discovery = Discovery(
            config,
            detector,
            SessionTracker(session, cancel),
            self.frame,
            known=self.objects,
            start_frame=start_frame,
            exemplars=self._exemplar_bank(),  # the one bank: accepted and rejected looks carry over
            on_backfill=self.store.put,
            new_id=lambda: max({*self.objects, *session.object_ids}, default=0) + 1,
        )
        for prompt in self.prompts():
            if prompt.object_id in discovery.exemplars.object_ids:
                continue
            mask = prompt.mask if prompt.mask is not None else self._prompt_mask(prompt)
            if mask is not None and mask.any():
                discovery.seed(prompt.object_id, self.frame(prompt.frame_idx), mask)
        self.last_discovery, self.exemplars = discovery, discovery.exemplars
        logger.info("discovery on: a check every %d frames from frame %d", config.every, start_frame)
        return discovery

    def _behind_limit(self, leg: Leg, legs: list[Leg]) -> int:
        """How far discovery tracks a new object against ``leg``: to frame 0 behind a forward
        leg; behind a backward leg up to that leg's first frame when a forward leg follows (it
        tracks the rest), else to the last frame."""
        if leg.step > 0:
            return 0
        return leg.first if any(other.step > 0 for other in legs) else self.info.num_frames - 1

    def _prompt_mask(self, prompt: FramePrompt) -> np.ndarray | None:
        result = self._prompt_results.get(prompt.frame_idx) or self.store.get(prompt.frame_idx)
        return None if result is None else result.mask_of(prompt.object_id)

    def _discover_after(self, discovery: Discovery, result: FrameResult) -> FrameResult:
        """One forward frame through discovery: the frame's result with what it added."""
        report = discovery.after_frame(result)
        if report is None:
            return result
        if report.found:
            self._adopt(report, discovery)
        return report.result

    def _adopt(self, report: CheckReport, discovery: Discovery) -> None:
        """Objects discovery found become the workspace's: objects, prompts and edits (replayable)."""
        prompts = getattr(discovery.tracker, "prompts", {})
        with self._lock:
            for record in report.found:
                oid = record.object_id
                if record.kind == "discovered" and oid not in self.objects:
                    name = f"{self.prompt_text} {oid}" if self.prompt_text else f"object {oid}"
                    obj = TrackedObject(oid, name, color_for(oid))
                    self.objects[oid] = obj
                    self._edits.note(Edit("object", oid, name=obj.name, color=obj.color))
                mask = prompts.get((oid, record.frame))
                if mask is not None:
                    prompt = FramePrompt(oid, record.frame, mask=mask)
                    self._prompts[(oid, record.frame)] = prompt
                    self._edits.note(Edit("prompt", oid, frame_idx=record.frame, prompt=prompt))
                self.found.append(record)

    def found_records(self) -> list[FoundRecord]:
        """:attr:`found` for the objects still here, in order."""
        with self._lock:
            return [r for r in self.found if r.object_id in self.objects]

    def _overlay_writer(self, path: Path):
        from .render import OverlayWriter

        return OverlayWriter(path, fps=self.info.fps, size=(self.info.width, self.info.height), threaded=True)

    def _keep_partial_overlay(self, writer, path: Path | None) -> None:
        """After a stop or an error: keep what was written (a playable partial overlay)."""
        try:
            writer.close()
            self.last_overlay = path
        except Exception:
            writer.abort()

    def _draw(self, result: FrameResult, trails=None, stats: list[MaskStats] | None = None) -> np.ndarray:
        """``result``'s frame with its masks (and ``trails``, a TrailHistory it joins) drawn.

        ``stats``: the masks' :func:`~tracker.masks.stack_stats`, when already computed.
        """
        from .render import draw_overlay

        frame_idx = result.frame_idx
        if trails is None:
            return draw_overlay(self.frame(frame_idx), result, self.objects, stats=stats)
        trails.update(result, stats)
        return draw_overlay(self.frame(frame_idx), result, self.objects, trails=trails.trails(), stats=stats)

    def _replay_frames(self, frames: range, writer, trails, done: int, total: int) -> Iterator[TrackEvent]:
        """``frames``, tracked earlier in the run, drawn from the store into the overlay and yielded."""
        from .render import draw_overlay

        for frame_idx in frames:
            result = self.store.get(frame_idx)
            if result is not None:
                trails.update(result)
            overlay = draw_overlay(self.frame(frame_idx), result, self.objects, trails=trails.trails())
            writer.write(overlay)
            shown = (
                result
                if result is not None
                else FrameResult.empty(frame_idx, self.info.height, self.info.width)
            )
            yield TrackEvent(shown, overlay, done, total, None, "backward", replay=True)

    def retrack(
        self,
        frame_idx: int,
        object_ids: list[int] | None = None,
        *,
        agree_iou: float = 0.9,
        agree_frames: int = 8,
        max_frames: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[TrackEvent]:
        """Re-track after a correction on ``frame_idx``, only as far as the correction matters.

        Two legs, forward from ``frame_idx`` first (a fix matters most after it), then backward
        from the frame before it (each planned by :meth:`TrackingSession.plan`, ``max_frames``
        long at most). Each leg stops once the new masks of the corrected objects have agreed
        with the previously tracked ones (mask IoU ≥ ``agree_iou``, both empty counts as
        agreeing) for ``agree_frames`` frames in a row. Only ``object_ids`` (default: the
        objects edited since the last run) are rewritten in the results; every other object's
        masks, and every frame outside the re-tracked span, stay exactly as they were.
        ``TrackEvent.total`` is an upper bound (the span is not known in advance).
        """
        with self._lock:
            self.info.check_frame(frame_idx)
            targets = sorted(object_ids if object_ids is not None else (self._stale_objects or self.objects))
            for object_id in targets:
                self._check_object(object_id)
            if not targets:
                raise InputError(
                    "Nothing changed since the last run: correct an object first, then re-track."
                )
            legs = self.session.plan(frame_idx, None, "forward", max_frames)
            if frame_idx > 0:
                legs += self.session.plan(frame_idx - 1, None, "backward", max_frames)
            cancel = self._armed(cancel)
        total = sum(len(leg) for leg in legs)
        done = 0
        self.last_retrack_frames = []
        for leg in legs:
            for merged in self._retrack_leg(leg, targets, frame_idx, agree_iou, agree_frames, cancel):
                done += 1
                overlay = self._draw(merged)
                # no ETA: where the new masks start agreeing with the old is not known ahead
                yield TrackEvent(merged, overlay, done, total, None, leg.direction)
            if cancel.is_set():
                break
        with self._lock:
            if not cancel.is_set():
                self._stale_objects.difference_update(targets)
            self.last_overlay = None  # the overlay no longer matches; export renders it again
        logger.info(
            "re-tracked %d frames around frame %d (of %d in the video)", done, frame_idx, self.info.num_frames
        )

    def _retrack_leg(
        self,
        leg: Leg,
        targets: list[int],
        corrected: int,
        agree_iou: float,
        agree_frames: int,
        cancel: threading.Event,
    ) -> Iterator[FrameResult]:
        """One leg of :meth:`retrack`: each frame's results after ``targets`` were rewritten."""
        from contextlib import closing

        streak = 0
        run = self.session.propagate(
            start_frame=leg.first, end_frame=leg.last, direction=leg.direction, cancel=cancel
        )
        with closing(run):
            for result in run:
                agrees = all(
                    mask_iou(self.store.mask(result.frame_idx, oid), result.mask_of(oid), empty=1.0)
                    >= agree_iou
                    for oid in targets
                )
                self.store.put(result.select(targets))
                with self._lock:
                    self._prompt_results.pop(result.frame_idx, None)
                self.last_retrack_frames.append(result.frame_idx)
                streak = streak + 1 if agrees and result.frame_idx != corrected else 0
                yield self.store.get(result.frame_idx) or result
                if streak >= agree_frames or cancel.is_set():
                    break

    # ------------------------------------------------------------------ review
    def flags(self, with_clip: bool = True, every_seconds: float = 0.5) -> list[Flag]:
        """Frames worth checking (see :mod:`tracker.flags`), sorted by frame.

        With ``with_clip`` and a prompt, each object's crop is scored against the prompt on a
        frame every ``every_seconds`` so a track that switched to something else is caught.
        """
        from .flags import flags_from_store, found_flags

        clip_scores = self.clip_series(every_seconds) if with_clip and self.prompt_text else None
        flags = flags_from_store(self.store, clip_scores) + found_flags(self.found_records(), self.info.fps)
        return sorted(flags, key=lambda flag: (flag.frame, flag.object_id))

    def clip_series(self, every_seconds: float = 0.5) -> dict[int, dict[int, float]]:
        """``{object_id: {frame: 100·cos(crop, prompt)}}`` on sampled tracked frames."""
        from .engine import crop_series

        return crop_series(self.frame, self._clip(), self.prompt_text, self._sampled_results(every_seconds))

    def _sampled_results(self, every_seconds: float) -> list[FrameResult]:
        """The tracked results (current objects only) on a frame every ``every_seconds``."""
        step = max(1, round(self.info.fps * every_seconds))
        with self._lock:
            results = (self.store.get(f) for f in self.store.frames() if f % step == 0)
            return [r.select(self.objects) for r in results if r is not None]

    # ------------------------------------------------------------------ importing
    def import_annotations(self, path: Path) -> list[TrackedObject]:
        """Start from existing masks: a DAVIS-style PNG folder or zip, or COCO / YouTube-VIS JSON.

        Each imported object becomes an object here: all its masks go into the results (so they
        can be reviewed, flagged and exported as they are), and its first annotated frame becomes
        its mask prompt, so tracking again refines from there. The file is read by
        :func:`tracker.annotations.read_annotations` (checked against this video before anything
        is decoded; masks of another size with the same aspect ratio rescaled); a file that does
        not fit changes nothing.
        """
        from .annotations import read_annotations

        imported = read_annotations(Path(path), self.info)
        with self._lock:
            created: list[TrackedObject] = []
            id_map: dict[int, int] = {}
            for source_id in imported.object_ids:
                obj = self.add_object(imported.names.get(source_id) or f"imported {source_id}")
                id_map[source_id] = obj.object_id
                created.append(obj)
            # every frame of the file counts as annotated: an object missing from one is absent there
            empty = encode_mask(np.zeros((self.info.height, self.info.width), bool))
            for frame_idx, objs in sorted(imported.rles.items()):
                for source_id, object_id in id_map.items():
                    self.store.put_rle(frame_idx, object_id, objs.get(source_id, empty))
            for source_id, object_id in id_map.items():
                first = imported.first_frame(source_id)
                mask = decode_rle(imported.rles[first][source_id])
                self._apply_prompt(FramePrompt(object_id, first, mask=mask))
            self._stale_objects.difference_update(id_map.values())
            return created

    @property
    def was_cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def render_overlay(self, path: Path | None = None) -> Path:
        """Write the overlay mp4 of everything tracked so far, in frame order."""
        from .render import OverlayWriter, TrailHistory, draw_overlay

        path = Path(path) if path else self.workdir / "overlay.mp4"
        trails = TrailHistory()
        with OverlayWriter(
            path, fps=self.info.fps, size=(self.info.width, self.info.height), threaded=True
        ) as writer:
            for f, frame in self.reader.iter_frames():
                res = self.store.get(f)
                if res is not None:
                    res = res.select(self.objects)
                    trails.update(res)
                writer.write(draw_overlay(frame, res, self.objects, trails=trails.trails()))
        self.last_overlay = path
        return path

    # ------------------------------------------------------------------ exports and projects
    def manifest(self) -> dict[str, Any]:
        from .project import Project

        return Project.from_workspace(self).to_dict()

    def export(
        self, out_dir: Path, formats: list[str] | None = None, *, flags: list[Flag] | None = None
    ) -> dict[str, Path]:
        """Write every export (or ``formats``, names of :data:`tracker.export.FORMATS`) into
        ``out_dir``, then the zip of them all; returns output name → path (zip last).

        The bundle holds the doubtful frames too (``flags.json`` / ``flags.csv``): ``flags`` when
        given (e.g. the ones a person is reviewing), else computed now with :meth:`flags` (only
        when the ``"flags"`` format is wanted).
        """
        from .export import export_all

        with self._lock:
            if len(self.store) == 0:
                raise InputError("Nothing has been tracked yet: track first, then download.")
            if flags is None and (formats is None or "flags" in formats):
                flags = self.flags()
            overlay = self.last_overlay
            if overlay is None or not overlay.exists():
                overlay = self.render_overlay()
            return export_all(
                self.store,
                self.info,
                self.objects,
                Path(out_dir),
                candidates=self.candidates,
                query=self.prompt_text,
                manifest=self.manifest(),
                overlay_path=overlay,
                formats=formats,
                flags=flags,
            )

    def save_project(self, path: Path) -> Path:
        from .project import Project

        with self._lock:
            return Project.from_workspace(self).save(Path(path), store=self.store)

    def load_project(self, path: Path) -> None:
        """Restore objects, prompts (replayed through SAM 2) and tracked results from a project file."""
        from .project import Project

        # the project is read against this video: its results are compared with the open video's
        # size and length, never with what the file claims
        project = Project.load(Path(path), self.info)
        project.check_video(self.info)
        history = [Edit.from_dict(edit) for edit in project.edits()]
        with self._lock:
            self._check_idle()
            try:
                # a project that fails half-way must not cost the work that was open: the log
                # puts the previous history back
                self._edits.load(history)
            except TrackerError as error:
                raise ProjectError(f"{Path(path).name} could not be opened: {error}") from error
            self.prompt_text = project.prompt or ""
            self.negative_text = project.negative_prompt
            self.found = project.found_records()
            self.exemplars = None  # looks are not saved; the opened work's objects start without them
            stored = project.results()
            if stored is not None:
                self.store = stored

    def history(self) -> list[Edit]:
        """Every edit so far, oldest first (what a project file stores)."""
        with self._lock:
            return self._edits.edits()


__all__ = [
    "Cancelled",
    "Edit",
    "FindEvent",
    "Settings",
    "TrackEvent",
    "TrackerError",
    "Workspace",
    "resolve_settings",
]
