"""Where the time goes: named stages, marked in the library, recorded only on request.

Library code marks its per-frame stages once, at function level::

    @timing.stage("draw")
    def draw_overlay(...): ...

and a caller who wants to know (the benchmark, a profiling session in a notebook) opens a
recorder around the work::

    with timing.record() as stages:
        for _ in workspace.track(overlay_path=out):
            pass
    stages.seconds("draw"), stages.calls("draw")          # all threads
    stages.seconds("decode", thread="sam2-frames")         # the prefetch thread only

With no recorder open anywhere in the process a marked call costs one global read and one
extra Python call (about 0.2 µs on the project's 2-core CPU; a frame of tracking takes 0.1 s or
more), so marks stay in place in production code; ``tests/test_timing.py`` keeps it under 1 µs.

Which stages the library marks (the names are the contract; tests check the benchmark's):

==================  ===============================================================  ===========
stage               what is timed                                                    marked on
==================  ===============================================================  ===========
``decode``          one working-size frame read (cache hits included)                ``VideoReader.get``
``preprocess``      a frame resized and normalised to SAM 2's input                  ``session.preprocess_frame``
``sam2``            one propagated frame, every object                               ``TrackingSession._track_frame``
``resolve masks``   logits → non-overlapping ``bool`` masks                          ``session.resolve_masks``
``store``           one frame's masks RLE-encoded into the result store              ``ResultStore.put``
``draw``            one overlay frame drawn                                          ``render.draw_overlay``
``encode``          a frame handed to the overlay writer (caller's thread), and      ``OverlayWriter.write``,
                    written into ffmpeg's pipe (thread ``overlay-writer``)           ``render._pump``
``clip``            one CLIP text or image batch encoded                             ``ClipModel.encode_*``
``heat map``        CLIP heat map of one frame (its crops encoded, scores spread)    ``candidates.clip_heatmap``
``proposals``       masks proposed on one frame; items = masks proposed              the proposers' ``__call__``
``crop scoring``    a frame's masks cut out and scored by CLIP; items = masks scored ``candidates.score_masks``
==================  ===============================================================  ===========

Times are inclusive (``sam2`` contains ``resolve masks``) and per call; a stage that calls
itself counts twice.

**Threads.** The current recorder lives in a :class:`contextvars.ContextVar`, so two callers in
different threads (two users of the app) never see each other's stages, and nested
``record()`` blocks each get the stages of their own block (an inner recorder also adds to the
outer one). Context does not follow work onto a new thread or a thread pool by itself, so
library code that hands per-frame work to a thread it starts wraps the target with
:func:`bind`: the wrapped callable carries a reference to the recorder that was current when it
was wrapped and records into it from the other thread (the recorder is thread-safe). That is
how the session's prefetch thread (``sam2-frames``) and the overlay writer's thread
(``overlay-writer``) are recorded. Totals are kept per stage and per thread *name* (a pool's
``_0``, ``_1`` suffix dropped), so a reader can tell work on the caller's thread from work that
overlapped it. A stage that ends after its recorder was closed may be dropped: read a recorder
after the work it watched has finished.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

__all__ = ["Recorder", "StageTotals", "bind", "current", "record", "stage", "thread_label"]

F = TypeVar("F", bound=Callable[..., Any])

_current: ContextVar[Recorder | None] = ContextVar("tracker_timing_recorder", default=None)
# Recorders open anywhere in the process: lets a marked call skip the ContextVar lookup when 0.
_open = 0
_open_lock = threading.Lock()


def thread_label(thread: threading.Thread | None = None) -> str:
    """The name stages are filed under: the thread's name without a pool's ``_<n>`` suffix."""
    name = (thread or threading.current_thread()).name
    head, sep, tail = name.rpartition("_")
    return head if sep and tail.isdigit() else name


@dataclass
class StageTotals:
    """What one stage added up to: ``seconds`` over ``calls``, and ``items`` a stage counted."""

    seconds: float = 0.0
    calls: int = 0
    items: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return {"seconds": round(self.seconds, 6), "calls": self.calls, "items": self.items}


class Recorder:
    """Totals per (stage, thread); thread-safe. Made by :func:`record`, filled by marked code."""

    def __init__(self, parent: Recorder | None = None) -> None:
        self.parent = parent
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], StageTotals] = {}

    def add(
        self, name: str, seconds: float, calls: int = 1, items: int = 0, thread: str | None = None
    ) -> None:
        """Add one measurement (to this recorder and every recorder it is nested in)."""
        label = thread_label() if thread is None else thread
        recorder: Recorder | None = self
        while recorder is not None:
            with recorder._lock:
                totals = recorder._totals.get((name, label))
                if totals is None:
                    totals = recorder._totals[(name, label)] = StageTotals()
                totals.seconds += seconds
                totals.calls += calls
                totals.items += items
            recorder = recorder.parent

    def totals(self, name: str, thread: str | None = None) -> StageTotals:
        """``name``'s totals on ``thread`` (a :func:`thread_label`), or over all threads when None."""
        out = StageTotals()
        with self._lock:
            for (stage_name, label), totals in self._totals.items():
                if stage_name == name and (thread is None or label == thread):
                    out.seconds += totals.seconds
                    out.calls += totals.calls
                    out.items += totals.items
        return out

    def seconds(self, name: str, thread: str | None = None) -> float:
        return self.totals(name, thread).seconds

    def calls(self, name: str, thread: str | None = None) -> int:
        return self.totals(name, thread).calls

    def items(self, name: str, thread: str | None = None) -> int:
        return self.totals(name, thread).items

    def names(self) -> list[str]:
        """Stages recorded at least once, sorted."""
        with self._lock:
            return sorted({name for name, _ in self._totals})

    def threads(self, name: str) -> list[str]:
        """Threads ``name`` was recorded on, sorted."""
        with self._lock:
            return sorted(label for stage_name, label in self._totals if stage_name == name)

    def missing(self, needed: Iterable[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
        """The ``(stage, thread or None)`` pairs of ``needed`` with no call recorded."""
        return [(name, thread) for name, thread in needed if not self.calls(name, thread)]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{stage: {seconds, calls, items, threads: {thread: {seconds, calls, items}}}}`` (JSON-ready)."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.names():
            entry: dict[str, Any] = self.totals(name).to_dict()
            entry["threads"] = {label: self.totals(name, label).to_dict() for label in self.threads(name)}
            out[name] = entry
        return out


@contextlib.contextmanager
def record() -> Iterator[Recorder]:
    """Record every marked stage run in this context (and on threads it :func:`bind`\\ s) until the block ends."""
    global _open
    recorder = Recorder(parent=_current.get())
    token = _current.set(recorder)
    with _open_lock:
        _open += 1
    try:
        yield recorder
    finally:
        with _open_lock:
            _open -= 1
        _current.reset(token)


def current() -> Recorder | None:
    """The recorder stages of this context go to, or None."""
    return _current.get() if _open else None


def bind(function: F) -> F:
    """``function``, made to record into the current recorder from whatever thread runs it.

    Wrap the target of a thread (or a pool task) that does marked work on the caller's behalf.
    With no recorder open this returns ``function`` itself.
    """
    recorder = current()
    if recorder is None:
        return function

    @functools.wraps(function)
    def bound(*args: Any, **kwargs: Any) -> Any:
        token = _current.set(recorder)
        try:
            return function(*args, **kwargs)
        finally:
            _current.reset(token)

    return bound  # type: ignore[return-value]


class stage:  # noqa: N801 - used like a function: @timing.stage("draw"), with timing.stage("draw")
    """Mark a stage: ``@stage(name)`` on a function or method, or ``with stage(name):`` around a block.

    ``count`` (decorator only) turns the function's return value into a number of items, summed
    into the stage's ``items`` (e.g. ``count=len`` for how many masks were proposed). Generator
    functions are refused: decorating one would time only the creation of the generator.
    """

    __slots__ = ("name", "count", "_recorder", "_started")

    def __init__(self, name: str, *, count: Callable[[Any], int] | None = None) -> None:
        self.name = name
        self.count = count
        self._recorder: Recorder | None = None
        self._started = 0.0

    def __call__(self, function: F) -> F:
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(
                f"timing.stage({self.name!r}) cannot time a generator function ({function.__qualname__})"
            )
        name, count = self.name, self.count

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not _open:
                return function(*args, **kwargs)
            recorder = _current.get()
            if recorder is None:
                return function(*args, **kwargs)
            started = perf_counter()
            result = None
            try:
                result = function(*args, **kwargs)
                return result
            finally:
                items = count(result) if count is not None and result is not None else 0
                recorder.add(name, perf_counter() - started, items=items)

        return timed  # type: ignore[return-value]

    def __enter__(self) -> stage:
        recorder = _current.get() if _open else None
        self._recorder = recorder
        if recorder is not None:
            self._started = perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.add(self.name, perf_counter() - self._started)
