"""ZeroGPU on Hugging Face Spaces: the model work as ``spaces.GPU`` calls, sized from the work.

On ZeroGPU (``SPACES_ZERO_GPU`` set by the Space, and the ``spaces`` package importable) a
``spaces.GPU`` function runs in a forked process that holds the GPU: arguments, results and
each yield are pickled across and its memory is lost when it returns. So handlers never run
there: the page's session stays in this process (:class:`tracker.remote.RemoteWorkspace`) and
only :mod:`tracker.engine`'s plain functions are wrapped (:func:`gpu_engine`), each with a
``duration`` computed from its arguments (frames × per-frame cost for the model and size, plus
loading, at most ``max_seconds``). Everywhere else nothing is wrapped and the app runs as
before. This lives in ``ui/`` so that ``tracker/`` never imports ``spaces``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_SECONDS = 120.0  # ZeroGPU's longest call for most visitors


def gpu(fn: F, duration: int = 60) -> F:
    """``fn`` unchanged: handlers keep the page's session, so they never run in a GPU process.

    (Kept so the page's wiring reads the same; the GPU work is :func:`gpu_engine`'s.)
    """
    return fn


def zero_gpu() -> bool:
    """True on a ZeroGPU Space: ``SPACES_ZERO_GPU`` is true and the ``spaces`` package imports."""
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() not in ("1", "t", "true"):
        return False
    try:
        import spaces  # noqa: F401 (only on a Space)
    except ImportError:
        logger.warning("SPACES_ZERO_GPU is set but the spaces package is missing: running without ZeroGPU")
        return False
    return True


def max_seconds() -> float:
    """The longest GPU call (``TRACKER_GPU_SECONDS``, default 120)."""
    try:
        return max(10.0, float(os.environ.get("TRACKER_GPU_SECONDS") or DEFAULT_MAX_SECONDS))
    except ValueError:
        return DEFAULT_MAX_SECONDS


def gpu_engine(limit: float | None = None) -> Any:
    """A :class:`tracker.remote.Engine` whose four functions are ``spaces.GPU`` calls."""
    import spaces

    from tracker import engine
    from tracker.remote import Engine

    limit = max_seconds() if limit is None else float(limit)

    def capped(seconds: float) -> int:
        return int(min(limit, math.ceil(seconds)))

    def find_duration(video, settings, prompt, negative) -> int:
        from tracker.video import probe

        frames = probe(video, max_size=settings.max_size, start=settings.start_time, end=settings.end_time)
        return capped(engine.find_seconds(settings, frames.num_frames))

    def prompt_duration(video, settings, prompts, frames) -> int:
        return capped(engine.prompt_seconds(len(frames)))

    def track_duration(video, settings, prompts, legs) -> int:
        objects = len({p.object_id for p in prompts})
        return capped(engine.track_seconds(settings, sum(len(leg) for leg in legs), objects))

    def clip_duration(video, settings, prompt, frames) -> int:
        return capped(engine.clip_seconds(len(frames)))

    logger.info("ZeroGPU: model work runs in GPU calls of at most %d s", limit)
    return Engine(
        find=spaces.GPU(duration=find_duration)(engine.find_candidates),
        prompt=spaces.GPU(duration=prompt_duration)(engine.prompt_frames),
        track=spaces.GPU(duration=track_duration)(engine.track_frames),
        clip=spaces.GPU(duration=clip_duration)(engine.clip_series),
        max_seconds=limit,
    )


def workspace_opener(hub: Any, settings: Any, device_label: str) -> tuple[Callable[..., Any], str]:
    """How a tab opens its workspace, ``(video, settings, workdir) → workspace``, and the device's name.

    On ZeroGPU a :class:`~tracker.remote.RemoteWorkspace` (:func:`remote_opener`); everywhere
    else the :class:`~tracker.workspace.Workspace`, its models in this process.
    """
    if zero_gpu():
        return remote_opener(hub, settings), "ZeroGPU"
    from tracker.workspace import Workspace

    def open_workspace(video, run_settings, workdir):
        return Workspace.open(video, hub, run_settings, workdir)

    return open_workspace, device_label


def remote_opener(hub: Any, settings: Any) -> Callable[..., Any]:
    """``open_workspace`` for ZeroGPU: :class:`~tracker.remote.RemoteWorkspace` on :func:`gpu_engine`.

    The models of ``settings`` (resolved: the start preset's) are loaded here, in the main
    process, so every GPU call's forked process starts with them in memory.
    """
    from tracker import engine
    from tracker.errors import TrackerError
    from tracker.remote import RemoteWorkspace
    from tracker.settings import resolve_settings

    engine.use_hub(hub)
    try:
        engine.preload(resolve_settings(settings))
    except TrackerError as error:  # missing weights: the page's banner says what to do
        logger.warning("ZeroGPU: models not preloaded: %s", error)
    calls = gpu_engine()

    def open_workspace(video, run_settings, workdir):
        return RemoteWorkspace.open_with(calls, video, hub, run_settings, workdir)

    return open_workspace
