"""Everything that shapes a run (:class:`Settings`) and how presets fill it in.

``Settings`` is stored in the manifest / project file; :func:`resolve_settings` fills every
``None`` from the preset for the chosen device (see :mod:`tracker.devices`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError


@dataclass
class Settings:
    """Everything that shapes a run; stored in the manifest / project file.

    ``None`` means "the preset's value for this device" (see :mod:`tracker.devices`).
    """

    preset: str | None = None  # key of tracker.devices.PRESETS; None = default for the device
    sam2_model: str | None = None  # key of tracker.registry.SAM2_MODELS
    image_size: int | None = None  # SAM 2 processing size (multiple of 32)
    clip_model: str = "ViT-B-32/laion2b_s34b_b79k"  # key of tracker.registry.CLIP_MODELS
    mask_generator: str = "points"  # candidate proposer: "points" | "sam2-auto" | "sam1-auto"
    sam1_model: str = "vit_b"
    device: str = "auto"
    random_weights: bool = False
    max_size: int | None = None  # longest side of the working video
    start_time: float | None = None
    end_time: float | None = None
    stride: int | None = None  # rank every Nth frame; None = from the preset (about 2 a second)
    top_frames: int | None = None  # frames that get masks
    points_per_side: int | None = None  # automatic mask generator grid
    threshold: float = 20.0  # minimum candidate score (100·cos)
    take_best: bool = False  # use the best candidates even when none reaches the threshold
    max_objects: int = 1
    # find new objects while tracking (tracker.discovery); None = on where it is affordable
    # (tracker.discovery.on_by_default: everywhere but on random weights)
    discover: bool | None = None
    discover_every: int = 20  # frames between two discovery checks
    overlap_iou: float = 0.5  # same-frame candidates overlapping more than this are one instance
    bf16: bool | None = None  # autocast; None = where it helps
    compile: bool = False  # torch.compile SAM 2 as vos_optimized does (CUDA only; slow first frames)
    checkpoints_dir: Path | None = None
    sam2_checkpoint: Path | None = None
    clip_checkpoint: Path | None = None
    sam1_checkpoint: Path | None = None  # explicit segment-anything file for mask_generator "sam1-auto"
    offline: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("checkpoints_dir", "sam2_checkpoint", "clip_checkpoint", "sam1_checkpoint"):
            if values.get(key):
                values[key] = Path(values[key])
        return cls(**values)


def resolve_settings(settings: Settings) -> Settings:
    """Fill every ``None`` in ``settings`` from the preset for the chosen device."""
    from .devices import PRESETS, default_preset, pick_device

    device = pick_device(settings.device)
    if settings.preset is not None:
        try:
            preset = PRESETS[settings.preset]
        except KeyError:
            raise InputError(
                f"Unknown preset {settings.preset!r}; choose one of {', '.join(PRESETS)}."
            ) from None
    else:
        preset = default_preset(device)
    image_size = settings.image_size or preset.image_size
    fill: dict[str, Any] = {
        "preset": preset.name,
        "sam2_model": settings.sam2_model or preset.sam2_model,
        "image_size": image_size,
        "max_size": settings.max_size or preset.max_size,
        "points_per_side": settings.points_per_side or preset.points_per_side,
        "top_frames": settings.top_frames or preset.top_frames,
    }
    if settings.discover is None:
        from .discovery.config import on_by_default

        fill["discover"] = on_by_default(settings.random_weights)
    resolved = dataclasses.replace(settings, **fill)
    if image_size % 32:
        raise InputError(f"The processing size must be a multiple of 32 (got {resolved.image_size}).")
    if resolved.max_objects < 1:
        raise InputError("--max-objects must be at least 1.")
    if resolved.discover_every < 1:
        raise InputError("--discover-every must be at least 1 frame.")
    return resolved


__all__ = ["Settings", "resolve_settings"]
