"""A workspace whose model work runs elsewhere, one plain call at a time (Hugging Face ZeroGPU).

On ZeroGPU a GPU function runs in a forked process: its arguments and results (each yield of a
generator too) are pickled across, and whatever it changes in memory is lost when it returns.
So the page's session stays here, in the main process: :class:`RemoteWorkspace` is a
:class:`~tracker.workspace.Workspace` (same objects, prompts, edit log, results, exports) whose
SAM 2 state is a :class:`RemoteSession`: the prompts as plain values, and an :class:`Engine`
that runs :mod:`tracker.engine`'s functions for each click, search, run and CLIP series.

What differs from the local workspace:

* Each call starts SAM 2 afresh from the prompts (nothing is remembered between calls), so a
  correction on a tracked frame is read without the tracking memory, and a second run does not
  start from the first run's memory.
* A run is cut into calls of at most :attr:`Engine.max_seconds` of GPU time
  (:func:`tracker.engine.frames_per_call`); each call after the first starts from the masks the
  previous call ended with (given to SAM 2 as mask prompts on that frame), so long clips are
  never cut off.
* When a call fails or runs out of its GPU time, what was tracked is kept and the error says
  so; tracking again with the same prompts continues from where it stopped (the frames already
  done are handed back without a GPU call). Stop does the same.
* A click costs one GPU call (the frame's prompts → its masks); undo, redo, an opened project
  or imported annotations replay every edit, with each frame computed once, in one call.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import engine
from .errors import InputError, TrackerError
from .legs import Direction, Leg, plan_legs
from .types import FramePrompt, FrameResult
from .workspace import FindEvent, Workspace

logger = logging.getLogger(__name__)

PROMPT_CACHE = 256  # frames' prompt results remembered (undo and redo replay them)
REMEMBERED_RUNS = 16  # runs whose progress is remembered, so tracking again continues them


class GpuRunStopped(TrackerError):
    """A GPU call ended before its work was done (out of GPU time, or it failed)."""


@dataclass
class Engine:
    """The four kinds of model work, each a plain function of :mod:`tracker.engine` (or a wrapper of one,
    e.g. ``spaces.GPU``); ``max_seconds`` is the longest a tracking call may take."""

    find: Callable[..., Generator[engine.FindUpdate]] = engine.find_candidates
    prompt: Callable[..., list[engine.FrameMasks]] = engine.prompt_frames
    track: Callable[..., Generator[engine.FrameMasks]] = engine.track_frames
    clip: Callable[..., dict[int, dict[int, float]]] = engine.clip_series
    max_seconds: float = 120.0


def prompt_key(prompt: FramePrompt) -> tuple:
    """A hashable fingerprint of ``prompt`` (a mask by its digest)."""
    mask = None
    if prompt.mask is not None:
        mask = (prompt.mask.shape, hashlib.sha1(prompt.mask.tobytes()).hexdigest())
    return (prompt.object_id, prompt.frame_idx, tuple(prompt.points), tuple(prompt.labels), prompt.box, mask)


class RemoteSession:
    """What :class:`Workspace` needs of a :class:`~tracker.session.TrackingSession`, with SAM 2 elsewhere.

    Holds each object's prompts (object id → frame → prompt) and asks ``engine`` for masks.
    """

    def __init__(self, engine_: Engine, video: Path, settings: Any, num_frames: int, width: int, height: int,
                 stored: Callable[[int], FrameResult | None] = lambda _frame: None):  # fmt: skip
        self.engine = engine_
        self.video = str(video)
        self.settings = settings
        self.num_frames, self.width, self.height = num_frames, width, height
        # object id → frame → its prompts there, in order (a mask the clicks refine, then the clicks)
        self._prompts: dict[int, dict[int, tuple[FramePrompt, ...]]] = {}
        self._cache: OrderedDict[tuple, engine.FrameMasks] = OrderedDict()
        self._deferred: set[int] | None = None  # frames to compute when a batch ends
        self._stored = stored  # frame → the caller's tracked result there (to continue a run)
        self._done: OrderedDict[tuple, int] = OrderedDict()  # (prompts, legs) → frames tracked
        self._running = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self._running

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(self._prompts)

    def prompts(self) -> list[FramePrompt]:
        """Every prompt, object by object (in the order they were first prompted), frame by frame."""
        return [p for frames in self._prompts.values() for _, chain in sorted(frames.items()) for p in chain]

    def _check_idle(self) -> None:
        if self._running:
            raise InputError("Tracking is running in this session: cancel it or let it finish first.")

    def add_prompt(self, prompt: FramePrompt) -> FrameResult:
        """Set the object's prompt on its frame; that frame's masks (objects prompted there).

        Clicks refine the mask that was there, as SAM 2 does within one session: the object's
        mask prompt on that frame (an accepted candidate, a brushed mask), else its tracked mask,
        goes to SAM 2 just before the clicks.
        """
        prompt.validate(self.width, self.height)
        if not 0 <= prompt.frame_idx < self.num_frames:
            raise InputError(f"Frame {prompt.frame_idx} is outside the video.")
        if prompt.is_empty:
            raise InputError("The prompt is empty: click on the object, draw a box or paint a mask.")
        with self._lock:
            self._check_idle()
            frames = self._prompts.setdefault(prompt.object_id, {})
            earlier = frames.get(prompt.frame_idx)
            base = None
            if prompt.mask is None or not prompt.mask.any():
                if earlier is None:
                    base = self._tracked_mask(prompt.object_id, prompt.frame_idx)
                elif earlier[0].mask is not None:
                    base = earlier[0]
            frames[prompt.frame_idx] = (prompt,) if base is None else (base, prompt)
            return self.result_at(prompt.frame_idx)

    def _tracked_mask(self, object_id: int, frame_idx: int) -> FramePrompt | None:
        stored = self._stored(frame_idx)
        if stored is None or object_id not in stored.object_ids:
            return None
        mask = stored.mask_of(object_id)
        if mask is None:
            return None
        return FramePrompt(object_id, frame_idx, mask=mask.copy()) if mask.any() else None

    def clear_prompts(self, frame_idx: int, object_id: int | None = None) -> FrameResult:
        with self._lock:
            self._check_idle()
            for oid in [object_id] if object_id is not None else list(self._prompts):
                self._prompts.get(oid, {}).pop(frame_idx, None)
            return FrameResult.empty(frame_idx, self.height, self.width)

    def remove_object(self, object_id: int) -> None:
        with self._lock:
            self._check_idle()
            self._prompts.pop(object_id, None)

    def reset(self) -> None:
        with self._lock:
            self._check_idle()
            self._prompts.clear()

    def close(self) -> None:
        with self._lock:
            self._prompts.clear()
            self._cache.clear()
            self._done.clear()

    # ------------------------------------------------------------------ prompt results
    def _frame_key(self, frame_idx: int) -> tuple:
        return (frame_idx, tuple(prompt_key(p) for p in self.prompts() if p.frame_idx == frame_idx))

    def result_at(self, frame_idx: int) -> FrameResult:
        """The masks of the objects prompted on ``frame_idx`` (a GPU call unless known or deferred)."""
        key = self._frame_key(frame_idx)
        known = self._cache.get(key)
        if known is None and self._deferred is not None:
            self._deferred.add(frame_idx)
            return FrameResult.empty(frame_idx, self.height, self.width)
        if known is None:
            self._compute([frame_idx])
            known = self._cache[key]
        self._cache.move_to_end(key)
        return known.to_result(self.height, self.width)

    def _compute(self, frames: list[int]) -> None:
        prompts = self.prompts()
        done = self.engine.prompt(self.video, self.settings, prompts, frames)
        for frame_idx, masks in zip(frames, done, strict=True):
            self._cache[self._frame_key(frame_idx)] = masks
        while len(self._cache) > PROMPT_CACHE:
            self._cache.popitem(last=False)

    @contextlib.contextmanager
    def batched(self) -> Iterator[set[int]]:
        """Within the block prompts only record (results unknown so far come back empty); at the end
        every such frame is computed, with its final prompts, in one call. Yields those frames."""
        with self._lock:
            outer = self._deferred is not None
            frames: set[int] = self._deferred if self._deferred is not None else set()
            self._deferred = frames
            try:
                yield frames
            finally:
                if not outer:
                    self._deferred = None
            if not outer:
                wanted = sorted(f for f in frames if self._frame_key(f) not in self._cache)
                if wanted:
                    self._compute(wanted)

    # ------------------------------------------------------------------ tracking
    def _prompted(self) -> set[int]:
        return {f for frames in self._prompts.values() for f in frames}

    def plan(
        self, start_frame=None, end_frame=None, direction: Direction = "both", max_frames=None
    ) -> list[Leg]:
        with self._lock:
            if not self._prompts:
                raise InputError("Nothing to track yet: click on an object (or accept a candidate) first.")
            for object_id, frames in self._prompts.items():
                if not frames:
                    raise InputError(
                        f"Object {object_id} has no clicks yet: click on it on some frame, or remove it."
                    )
            return plan_legs(self.num_frames, self._prompted(), start_frame, end_frame, direction, max_frames)

    def propagate(self, start_frame=None, end_frame=None, direction: Direction = "both",
                  cancel: threading.Event | None = None, *, max_frames=None) -> Iterator[FrameResult]:  # fmt: skip
        """Like :meth:`TrackingSession.propagate`: one result per frame, in the plan's order."""
        legs = self.plan(start_frame, end_frame, direction, max_frames)
        with self._lock:
            self._check_idle()
        return self._run(legs, cancel or threading.Event())

    def _run(self, legs: list[Leg], cancel: threading.Event) -> Iterator[FrameResult]:
        with self._lock:
            self._check_idle()
            self._running = True
        key = (tuple(prompt_key(p) for p in self.prompts()), tuple(legs))
        plan = [(i, f) for i, leg in enumerate(legs) for f in leg.frames()]
        objects = self.object_ids
        count, last = 0, None
        try:
            # what an earlier run with the same prompts got through is in the results: no GPU needed
            for _, frame_idx in plan[: self._done.pop(key, 0)]:
                stored = self._stored(frame_idx)
                if stored is None or not set(objects) <= set(stored.object_ids):
                    break
                last = stored.select(objects)
                count += 1
                yield last
            while count < len(plan) and not cancel.is_set():
                for result in self._call(legs, plan, count, last, cancel):
                    count, last = count + 1, result
                    yield result
        except Exception as error:
            if isinstance(error, TrackerError):
                raise
            logger.warning("GPU call ended after %d of %d frames", count, len(plan), exc_info=True)
            raise GpuRunStopped(_stopped_message(count, plan)) from error
        finally:
            with self._lock:
                self._done[key] = count
                while len(self._done) > REMEMBERED_RUNS:
                    self._done.popitem(last=False)
                self._running = False

    def _call(self, legs, plan, count: int, last: FrameResult | None, cancel) -> Iterator[FrameResult]:
        """One GPU call: the next frames of ``plan`` that fit in its time."""
        per_call = engine.frames_per_call(self.settings, len(self._prompts), self.engine.max_seconds)
        todo = plan[count : count + per_call]
        chunk = _chunk_legs(legs, todo)
        prompts = self.prompts()
        leg_index, first = todo[0]
        if last is not None and plan[count - 1][0] == leg_index:  # mid-leg: start from where it got
            prompts += _seeds(last, self._prompts, legs[leg_index].step, first)
        logger.info("GPU call: %d frames (%s)", len(todo), ", ".join(f"{g.first}→{g.last}" for g in chunk))
        run = self.engine.track(self.video, self.settings, prompts, chunk)
        with closing(run):
            for masks in run:
                yield masks.to_result(self.height, self.width)
                if cancel.is_set():
                    return


def _chunk_legs(legs: list[Leg], todo: list[tuple[int, int]]) -> list[Leg]:
    """The frames ``todo`` (leg index, frame), consecutive in the plan, as legs."""
    out: list[Leg] = []
    for leg_index in sorted({i for i, _ in todo}):
        frames = [f for i, f in todo if i == leg_index]
        out.append(Leg(frames[0], frames[-1], legs[leg_index].step))
    return out


def _seeds(
    last: FrameResult, prompts: dict[int, dict[int, tuple[FramePrompt, ...]]], step: int, first: int
) -> list[FramePrompt]:
    """Mask prompts on the frame before ``first`` from the masks a previous call ended with there."""
    seed_frame = first - step
    seeds = []
    for object_id, mask in zip(last.object_ids, last.masks, strict=True):
        if object_id in prompts and seed_frame not in prompts[object_id] and mask.any():
            seeds.append(FramePrompt(object_id, seed_frame, mask=mask))
    return seeds


def _stopped_message(done: int, plan: list[tuple[int, int]]) -> str:
    if not done:
        return "The GPU run stopped before any frame was tracked (it may have run out of GPU time): press Track to try again."
    nxt = plan[done][1]
    return (
        f"The GPU run stopped after {done} of {len(plan)} frames (it may have run out of GPU time). "
        f"The frames tracked are kept: press Track again to continue from frame {nxt}."
    )


class RemoteWorkspace(Workspace):
    """A :class:`Workspace` whose model work is :class:`Engine` calls (see the module docstring)."""

    engine: Engine = Engine()

    @classmethod
    def open_with(
        cls, engine_: Engine, video: Path, hub: Any, settings: Any, workdir: Path
    ) -> RemoteWorkspace:
        workspace = cls.open(video, hub, settings, workdir)
        assert isinstance(workspace, RemoteWorkspace)
        workspace.engine = engine_
        return workspace

    @property
    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                info = self.info
                self._session = RemoteSession(  # type: ignore[assignment]
                    self.engine, info.path, self.settings, info.num_frames, info.width, info.height,
                    stored=self.store.get,
                )  # fmt: skip
            return self._session

    def find_candidates(
        self, prompt: str, negative_prompt: str | None = None, cancel: threading.Event | None = None
    ) -> Iterator[FindEvent]:
        from .candidates import check_prompt

        prompt = check_prompt(prompt)
        negative_prompt = (negative_prompt or "").strip() or None
        cancel = cancel or self.cancel_event
        cancel.clear()
        yield FindEvent("load", 0.0, "Waiting for a GPU…")
        found: list = []
        run = self.engine.find(str(self.info.path), self.settings, prompt, negative_prompt)
        try:
            with closing(run):
                for update in run:
                    if update.candidates is not None:
                        found = self.ranked([c.to_candidate() for c in update.candidates])
                        with self._lock:
                            self.candidates = found
                    yield FindEvent(update.stage, update.progress, update.message, found, update.new_frame)
                    if cancel.is_set():
                        break
        except Exception as error:
            if isinstance(error, TrackerError):
                raise
            logger.warning("GPU call of the search ended early", exc_info=True)
            raise GpuRunStopped(
                f"The search stopped early (it may have run out of GPU time) with {len(found)} candidates: "
                "press Find again, or choose a faster preset."
            ) from error
        with self._lock:
            self.prompt_text = prompt
            self.negative_text = negative_prompt
            self.candidates = found

    def clip_series(self, every_seconds: float = 0.5) -> dict[int, dict[int, float]]:
        results = self._sampled_results(every_seconds)
        if not results:
            return {}
        plain = [engine.FrameMasks.from_result(r) for r in results]
        return self.engine.clip(str(self.info.path), self.settings, self.prompt_text, plain)

    # edits that replay the history compute each frame's masks once, in one call
    def undo(self) -> bool:
        with self._replaying():
            return super().undo()

    def redo(self) -> bool:
        with self._replaying():
            return super().redo()

    def load_project(self, path: Path) -> None:
        with self._replaying():
            super().load_project(path)

    def import_annotations(self, path: Path) -> list:
        with self._replaying():
            return super().import_annotations(path)

    @contextlib.contextmanager
    def _replaying(self) -> Iterator[None]:
        with self._lock:
            session = self.session
            with session.batched() as frames:
                yield
            for frame_idx in frames:  # the results recorded while deferred were placeholders
                if frame_idx in self._prompt_results:
                    self._prompt_results[frame_idx] = session.result_at(frame_idx)


__all__ = ["Engine", "GpuRunStopped", "RemoteSession", "RemoteWorkspace", "prompt_key"]
