"""What the web app needs from the library, gathered once at start-up.

:class:`Services` is the only place ``ui/`` reaches into ``tracker`` for shared things (the
:class:`~tracker.models.ModelHub`, the presets, the time estimate, the weight check, the
drawing and mp4 writing used for thumbnails and streamed segments). Tests build one around a
stand-in workspace; :meth:`Services.from_settings` builds the real one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tracker.settings import Settings

from .protocols import WorkspaceLike

logger = logging.getLogger(__name__)

# Workspace.open(video, hub, settings, workdir) with the hub already bound.
OpenWorkspace = Callable[[Path, Settings, Path], WorkspaceLike]
# (frame H×W×3 uint8, mask H×W bool, rank from 1) → H×W×3 uint8 with the mask and rank drawn
DrawCandidate = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
CANDIDATE_COLOR = (255, 196, 0)  # one colour for every candidate: they are not objects yet
# (path, fps, (width, height)) → a writer with write(frame) and close()
OpenSegmentWriter = Callable[[Path, float, tuple[int, int]], Any]


@dataclass(frozen=True)
class PresetChoice:
    name: str
    label: str  # what the radio button says
    description: str = ""  # one line shown with the time estimate


@dataclass(frozen=True)
class MissingWeights:
    model: str
    fix: str  # the exact command that fetches it


def default_temp_root() -> Path:
    """``$TRACKER_TEMP`` or ``<system temp>/tracker-webapp-<uid>``; nothing is created here.

    The user id in the name keeps two local users from sharing (or squatting) one folder;
    :func:`ui.state.ensure_private_root` refuses a root someone else owns or can write to.
    """
    default = Path(tempfile.gettempdir()) / f"tracker-webapp-{os.getuid()}"
    return Path(os.environ.get("TRACKER_TEMP") or default)


def can_stream_video() -> bool:
    """Gradio's streamed video output muxes each segment with the system ffmpeg and ffprobe."""
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


@dataclass
class Services:
    settings: Settings  # from the command line; the preset radio overrides ``preset``
    open_workspace: OpenWorkspace
    presets: list[PresetChoice]
    default_preset: str
    estimate_seconds: Callable[[str, int], float | None]  # (preset, frames) → seconds for find + track
    draw_candidate: DrawCandidate
    open_segment_writer: OpenSegmentWriter
    temp_root: Path = field(default_factory=default_temp_root)
    missing_weights: list[MissingWeights] = field(default_factory=list)
    missing_packages: list[Any] = field(default_factory=list)  # tracker.packages.PackageProblem
    device_label: str = "cpu"
    streaming: bool = field(default_factory=can_stream_video)
    model_concurrency: int = 1  # model events running at once, across every tab
    max_seconds: float | None = None  # longest video a tab may open (None: no limit)
    max_frames: int | None = None  # most frames a tab may open (None: no limit)
    max_temp_bytes: int | None = None  # cap on everything under temp_root (None: no cap)

    @property
    def random_weights(self) -> bool:
        return bool(self.settings.random_weights)

    @property
    def discovery_available(self) -> bool:
        """Discovery needs a tracking session it can add objects to mid-run: not on ZeroGPU."""
        return self.device_label != "ZeroGPU"

    @property
    def discover_default(self) -> bool:
        """Where the "Find new ones while tracking" switch (and /track's ``discover``) starts:
        the settings' choice, else :func:`tracker.discovery.on_by_default` where available."""
        if not self.discovery_available:
            return False
        if self.settings.discover is not None:
            return bool(self.settings.discover)
        from tracker.discovery.config import on_by_default

        return on_by_default(self.random_weights)

    @property
    def ready(self) -> bool:
        """False when weights or model packages are missing: the run buttons are off."""
        return not self.missing_weights and not self.missing_packages

    def settings_for(self, preset: str | None) -> Settings:
        """The settings for ``preset``, discovery resolved to :attr:`discover_default` when unset."""
        names = {p.name for p in self.presets}
        chosen = preset if preset in names else self.default_preset
        discover = self.discover_default if self.settings.discover is None else self.settings.discover
        return dataclasses.replace(self.settings, preset=chosen, discover=discover)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        temp_root: Path | None = None,
        model_concurrency: int = 1,
        max_seconds: float | None = None,
        max_frames: int | None = None,
        max_temp_bytes: int | None = None,
    ) -> Services:
        """The real services: one ModelHub for every tab, presets and estimates for this device.

        A model package that is missing or broken is logged (one line each) and listed in
        ``missing_packages``; the services then never touch torch and the page says what to install.
        """
        from tracker import devices, render
        from tracker.packages import check_packages

        problems = check_packages(sam1=settings.mask_generator == "sam1-auto")
        if problems:
            for problem in problems:
                logger.error("%s", problem)
            return cls.without_models(settings, problems, temp_root, model_concurrency)
        from tracker.models import ModelHub
        from tracker.settings import resolve_settings
        from tracker.types import FrameResult, TrackedObject

        from .gpu import workspace_opener

        hub = ModelHub(
            checkpoints_dir=settings.checkpoints_dir, offline=settings.offline or None, device=settings.device
        )
        device = devices.pick_device(settings.device)
        presets = [
            PresetChoice(name, name.capitalize(), preset.description)
            for name, preset in devices.PRESETS.items()
        ]
        default = settings.preset or devices.default_preset(device).name

        open_workspace, label = workspace_opener(
            hub, dataclasses.replace(settings, preset=default), str(device)
        )

        def estimate_seconds(preset: str, num_frames: int) -> float | None:
            try:
                chosen = devices.PRESETS[preset]
                if settings.image_size:  # a command-line size overrides every preset's
                    chosen = dataclasses.replace(chosen, image_size=settings.image_size)
                return float(devices.estimate_seconds(chosen, num_frames, device))
            except Exception:  # an estimate is a nicety; never let it break an upload
                logger.debug("estimate failed", exc_info=True)
                return None

        def draw_candidate(frame, mask, rank):
            result = FrameResult(0, (rank,), mask[None], np.ones(1, np.float32))
            return render.draw_overlay(frame, result, {rank: TrackedObject(rank, "", CANDIDATE_COLOR)})

        def open_segment_writer(path: Path, fps: float, size: tuple[int, int]):
            return render.OverlayWriter(path, fps=fps, size=size)

        missing = [
            MissingWeights(error.model, error.fix)
            for error in hub.missing_weights(resolve_settings(dataclasses.replace(settings, preset=default)))
        ]
        return cls(
            settings=settings,
            open_workspace=open_workspace,
            presets=presets,
            default_preset=default,
            estimate_seconds=estimate_seconds,
            draw_candidate=draw_candidate,
            open_segment_writer=open_segment_writer,
            temp_root=temp_root or default_temp_root(),
            missing_weights=missing,
            device_label=label,
            model_concurrency=model_concurrency,
            max_seconds=max_seconds,
            max_frames=max_frames,
            max_temp_bytes=max_temp_bytes,
        )

    @classmethod
    def without_models(
        cls,
        settings: Settings,
        problems: list[Any],
        temp_root: Path | None = None,
        model_concurrency: int = 1,
    ) -> Services:
        """Services for a page that only shows what to install: nothing here imports torch."""
        from tracker.devices import PRESETS

        def unavailable(*_args: Any, **_kwargs: Any):
            from tracker.errors import PackageUnavailable

            raise PackageUnavailable(str(problems[0]))

        return cls(
            settings=settings,
            open_workspace=unavailable,
            presets=[PresetChoice(n, n.capitalize(), p.description) for n, p in PRESETS.items()],
            default_preset=settings.preset if settings.preset in PRESETS else "balanced",
            estimate_seconds=lambda _preset, _frames: None,
            draw_candidate=unavailable,
            open_segment_writer=unavailable,
            temp_root=temp_root or default_temp_root(),
            missing_packages=list(problems),
            device_label="unknown (model packages missing)",
            model_concurrency=model_concurrency,
        )
